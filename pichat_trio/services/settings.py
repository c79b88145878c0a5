"""User settings: read, and partial updates validated against what is configured."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ..domain.events import Origin, SettingsChanged
from ..errors import InvalidInput
from ..models import Settings, User, VoiceSettings
from ..ports import Hub
from .db import Database

__all__ = ["GENDERS", "SettingsService"]

GENDERS = ("female", "male")


class SettingsService:
    def __init__(
        self, db: Database, hub: Hub, models: Sequence[str], accents: Sequence[str]
    ) -> None:
        self._db = db
        self._repo = db.repository
        self._hub = hub
        self.models = tuple(models)
        self.accents = tuple(accents)
        # Read-modify-write of one row; updates are rare, one lock is plenty.
        self._lock = trio.Lock()

    async def get(self, user: User) -> Settings:
        return await self._db.run(self._repo.get_settings, user.id)

    def _check(self, field: str, value: str | None, allowed: Sequence[str]) -> None:
        if value is not None and value not in allowed:
            raise InvalidInput(f"payload.{field}", f"expected one of {', '.join(allowed)}")

    def voice(
        self,
        current: VoiceSettings,
        gender: str | None,
        accent: str | None,
        speed: float | None,
        field: str = "voice_settings",
    ) -> VoiceSettings:
        """``current`` with the given parts replaced, after validating them."""
        self._check(f"{field}.gender", gender, GENDERS)
        self._check(f"{field}.accent", accent, self.accents)
        return VoiceSettings(
            gender=current.gender if gender is None else gender,
            accent=current.accent if accent is None else accent,
            speed=current.speed if speed is None else float(speed),
        )

    async def update(
        self,
        user: User,
        origin: Origin,
        selected_model: str | None = None,
        voice: tuple[str | None, str | None, float | None] | None = None,
        assistant_personality: str | None = None,
    ) -> Settings:
        self._check("selected_model", selected_model, self.models)
        async with self._lock:
            current = await self.get(user)
            updated = Settings(
                selected_model=selected_model or current.selected_model,
                voice_settings=current.voice_settings
                if voice is None
                else self.voice(current.voice_settings, *voice),
                assistant_personality=current.assistant_personality
                if assistant_personality is None
                else assistant_personality,
            )
            await self._db.run(self._repo.save_settings, user.id, updated)
        await self._hub.publish(user.id, SettingsChanged(user.id, origin, updated))
        return updated
