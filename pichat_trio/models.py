"""Domain records: what the repository stores and what clients are shown.

They are ``msgspec.Struct`` so the protocol layer encodes them to JSON without
an intermediate dict. Field names are the wire names of docs/protocol.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

__all__ = [
    "Conversation",
    "Exchange",
    "ExchangeRequest",
    "FinishRequest",
    "Message",
    "MessageStatus",
    "Role",
    "Settings",
    "Turn",
    "User",
    "VoiceSettings",
]

Role = Literal["user", "assistant"]
MessageStatus = Literal["complete", "streaming", "cancelled", "interrupted", "error"]


class User(msgspec.Struct, frozen=True):
    id: str
    name: str


class Conversation(msgspec.Struct, frozen=True):
    id: str
    title: str
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None


class Message(msgspec.Struct, frozen=True):
    id: str
    conversation_id: str
    role: Role
    content: str
    created_at: datetime
    is_audio: bool
    audio_file: str | None
    status: MessageStatus


class Turn(msgspec.Struct, frozen=True):
    """A stored message as a prompt's history sees it."""

    role: Role
    content: str
    status: MessageStatus


class VoiceSettings(msgspec.Struct, frozen=True):
    gender: str = "female"
    accent: str = "american"
    speed: float = 1.0


class Settings(msgspec.Struct, frozen=True):
    selected_model: str
    voice_settings: VoiceSettings
    assistant_personality: str


class ExchangeRequest(msgspec.Struct, frozen=True):
    """What one ``send_message`` asks the store for (``Repository.start_exchanges``).

    ``retitle`` is ``(default_title, new_title)``: a conversation still
    carrying the default title takes the new one.
    """

    user_id: str
    conversation_id: str
    content: str
    is_audio: bool = False
    audio_file: str | None = None
    retitle: tuple[str, str] | None = None
    history_rows: int = 200


class FinishRequest(msgspec.Struct, frozen=True):
    """The final write of one answer (``Repository.finish_messages``)."""

    user_id: str
    message_id: str
    content: str
    status: MessageStatus


class Exchange(msgspec.Struct, frozen=True):
    """What one ``send_message`` starts, read and written in one transaction: the
    stored user message, the assistant's (empty, ``streaming``) answer, the
    conversation, the user's settings and the history before the answer."""

    user_message: Message
    answer: Message
    conversation: Conversation
    settings: Settings
    history: list[Turn]
