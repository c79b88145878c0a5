"""Rows of the SQL tables as the domain's models, and the models as rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from ...models import Conversation, Message, MessageStatus, Role, Settings, VoiceSettings
from .tables import messages

__all__ = [
    "MESSAGE_COLUMNS",
    "conversation_of",
    "message_of",
    "new_message",
    "now_utc",
    "settings_of",
]


def now_utc() -> datetime:
    """The time stored in rows: UTC, without a time zone (every dialect takes it)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def conversation_of(row: Any) -> Conversation:
    return Conversation(
        id=row.id,
        title=row.title,
        created_at=row.created_at.replace(tzinfo=UTC),
        updated_at=row.updated_at.replace(tzinfo=UTC),
        last_message_at=_utc(row.last_message_at),
    )


def message_of(row: Any) -> Message:
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,
        content=row.content,
        created_at=row.created_at.replace(tzinfo=UTC),
        is_audio=bool(row.is_audio),
        audio_file=row.audio_file,
        status=row.status,
    )


def new_message(
    user_id: str,
    conversation_id: str,
    role: Role,
    content: str,
    status: MessageStatus,
    is_audio: bool,
    audio_file: str | None,
    now: datetime,
) -> tuple[Message, dict[str, Any]]:
    """A new message and the row that stores it."""
    message = Message(
        id=str(uuid.uuid4()),
        conversation_id=conversation_id,
        role=role,
        content=content,
        created_at=now.replace(tzinfo=UTC),
        is_audio=is_audio,
        audio_file=audio_file,
        status=status,
    )
    values = msgspec.structs.asdict(message)
    values.update(user_id=user_id, created_at=now)
    return message, values


def settings_of(row: Any) -> Settings:
    return Settings(
        selected_model=row.selected_model,
        voice_settings=VoiceSettings(
            gender=row.voice_gender, accent=row.voice_accent, speed=row.voice_speed
        ),
        assistant_personality=row.assistant_personality,
    )


MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.conversation_id,
    messages.c.role,
    messages.c.content,
    messages.c.created_at,
    messages.c.is_audio,
    messages.c.audio_file,
    messages.c.status,
)
