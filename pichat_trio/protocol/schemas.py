"""Payload schemas of every client action, in one place, built from the limits.

``msgspec`` validates types and ranges while it decodes; its messages are
rewritten to name the field as a client sees it (``payload.title``).
Unknown fields are ignored, as docs/protocol.md says.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from ..limits import Limits
from .errors import ProtocolError

__all__ = [
    "CancelGeneration",
    "CreateConversation",
    "Empty",
    "GetConversations",
    "GetMessages",
    "IdPayload",
    "Schemas",
    "SendMessage",
    "SpeechToText",
    "TextToSpeech",
    "UpdateConversation",
    "UpdateSettings",
    "VoicePatch",
    "field_error",
    "utc",
]

S = TypeVar("S", bound=msgspec.Struct)


_NO_NUL = r"\A[^\x00]*\Z"
"""Text a person writes never holds NUL, and PostgreSQL's text columns cannot store it."""


def _text(max_chars: int, min_chars: int = 0) -> Any:
    return Annotated[str, msgspec.Meta(min_length=min_chars, max_length=max_chars, pattern=_NO_NUL)]


def _base64(max_chars: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=max_chars)]


_ZONED = Annotated[datetime, msgspec.Meta(tz=True)]
"""A time with its zone: one without is refused, never read as the server's local time."""


def utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC; a time that has none (year 1 east of Greenwich) is out of range."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ProtocolError("invalid_request", f"{field}: out of range") from None


def _page(maximum: int) -> Any:
    return Annotated[int, msgspec.Meta(ge=1, le=maximum)] | None


class Empty(msgspec.Struct):
    pass


class VoicePatch(msgspec.Struct):
    gender: str | None = None
    accent: str | None = None
    speed: Annotated[float, msgspec.Meta(ge=0.5, le=2.0)] | None = None


# The request of each action, as the code that handles it sees it. What the
# limits bound (lengths, page sizes) is checked by the subclass ``Schemas``
# makes for the configured limits, whose instances these types describe.


class IdPayload(msgspec.Struct):
    id: uuid.UUID


class CancelGeneration(msgspec.Struct):
    conversation_id: uuid.UUID


class GetConversations(msgspec.Struct):
    limit: int | None = None
    before: datetime | None = None


class CreateConversation(msgspec.Struct):
    title: str | None = None


class UpdateConversation(msgspec.Struct):
    id: uuid.UUID
    title: str


class SendMessage(msgspec.Struct):
    conversation_id: uuid.UUID
    content: str
    is_audio: bool = False
    audio_data: str | None = None


class GetMessages(msgspec.Struct):
    conversation_id: uuid.UUID
    limit: int | None = None
    before: uuid.UUID | None = None


class UpdateSettings(msgspec.Struct):
    selected_model: str | None = None
    voice_settings: VoicePatch | None = None
    assistant_personality: str | None = None


class TextToSpeech(msgspec.Struct):
    text: str
    voice_settings: VoicePatch | None = None
    format: Literal["wav", "mp3"] = "wav"
    stream: bool = False


class SpeechToText(msgspec.Struct):
    audio_data: str
    language: str | None = None


_REQUIRED = object()


def _bounded(base: type[S], fields: list[tuple[str, Any, Any]]) -> type[S]:
    """``base`` with ``fields`` redefined (same names and order) to carry their bounds:
    what it decodes are instances of ``base``."""
    bounded: type[S] = msgspec.defstruct(  # type: ignore[assignment]  # a subclass of base
        base.__name__,
        [
            (name, kind) if default is _REQUIRED else (name, kind, default)
            for name, kind, default in fields
        ],
        bases=(base,),
    )
    return bounded


class Schemas:
    """The payload type of each action, for one set of limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        title = _text(limits.max_title_chars)
        audio = _base64(limits.max_audio_base64_chars)
        self.get_conversations = _bounded(
            GetConversations,
            [
                ("limit", _page(limits.max_conversations_page), None),
                ("before", _ZONED | None, None),
            ],
        )
        self.create_conversation = _bounded(CreateConversation, [("title", title | None, None)])
        self.update_conversation = _bounded(
            UpdateConversation, [("id", uuid.UUID, _REQUIRED), ("title", title, _REQUIRED)]
        )
        self.send_message = _bounded(
            SendMessage,
            [
                ("content", _text(limits.max_content_chars, 1), _REQUIRED),
                ("audio_data", audio | None, None),
            ],
        )
        self.get_messages = _bounded(
            GetMessages, [("limit", _page(limits.max_messages_page), None)]
        )
        self.update_settings = _bounded(
            UpdateSettings,
            [("assistant_personality", _text(limits.max_personality_chars) | None, None)],
        )
        self.text_to_speech = _bounded(
            TextToSpeech, [("text", _text(limits.max_tts_chars), _REQUIRED)]
        )
        self.speech_to_text = _bounded(
            SpeechToText, [("audio_data", audio, _REQUIRED), ("language", _text(35) | None, None)]
        )
        self.id_payload = IdPayload
        self.cancel_generation = CancelGeneration
        self.empty = Empty


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`]+)`")


def field_error(error: msgspec.ValidationError, root: str = "payload") -> tuple[str, str]:
    """``(field, message)`` for a validation error, with the field as a client names it."""
    match = _AT.match(str(error))
    assert match is not None
    what, path = match["what"], match["path"] or ""
    field = root + path
    missing = _MISSING.match(what)
    if missing:
        return f"{field}.{missing['name']}", "required"
    what = what.replace(f"Expected `str` matching regex {_NO_NUL!r}", "must not contain NUL")
    what = what.replace("Invalid UUID", "expected a UUID string")
    what = what.replace("Invalid RFC3339 encoded datetime", "expected an RFC 3339 time")
    what = what.replace(
        "Expected `datetime` with a timezone component", "expected an RFC 3339 time with a zone"
    )
    if _EXPECTED.match(what):
        what = "e" + what[1:]
    return field, what
