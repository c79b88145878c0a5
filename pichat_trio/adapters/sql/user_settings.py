"""Each user's settings, or the server's defaults for a user who saved none."""

from __future__ import annotations

import sqlalchemy as sa

from ...models import Settings
from .dialects import settings_upsert
from .rows import now_utc, settings_of
from .store import SqlStore, read
from .tables import user_settings

__all__ = ["SettingsStore"]


_SETTINGS = sa.select(user_settings).where(user_settings.c.user_id == sa.bindparam("b_user"))


class SettingsStore(SqlStore):
    """Settings, one row per user who saved any."""

    @read
    def get_settings(self, user_id: str) -> Settings:
        with self.engine.connect() as connection:
            return self._settings_in(connection, user_id)

    def _settings_in(self, connection: sa.Connection, user_id: str) -> Settings:
        row = connection.execute(_SETTINGS, {"b_user": user_id}).first()
        return self._default_settings if row is None else settings_of(row)

    def save_settings(self, user_id: str, settings: Settings) -> Settings:
        values = {
            "selected_model": settings.selected_model,
            "voice_gender": settings.voice_settings.gender,
            "voice_accent": settings.voice_settings.accent,
            "voice_speed": settings.voice_settings.speed,
            "assistant_personality": settings.assistant_personality,
            "updated_at": now_utc(),
        }
        with self._write() as connection:
            connection.execute(settings_upsert(self.engine.dialect.name, user_id, values))
        return settings
