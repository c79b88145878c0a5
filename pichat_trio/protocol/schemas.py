"""Payload schemas of every client action, in one place, built from the limits.

``msgspec`` validates types and ranges while it decodes; its messages are
rewritten to name the field as a client sees it (``payload.title``).
Unknown fields are ignored, as docs/protocol.md says.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec

from ..limits import Limits
from .errors import ProtocolError

__all__ = ["Schemas", "field_error", "utc"]


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


class IdPayload(msgspec.Struct):
    id: uuid.UUID


class CancelGeneration(msgspec.Struct):
    conversation_id: uuid.UUID


class Schemas:
    """The payload type of each action, for one set of limits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        title = _text(limits.max_title_chars)
        self.get_conversations = msgspec.defstruct(
            "GetConversations",
            [
                ("limit", _page(limits.max_conversations_page), None),
                ("before", _ZONED | None, None),
            ],
        )
        self.create_conversation = msgspec.defstruct(
            "CreateConversation", [("title", title | None, None)]
        )
        self.update_conversation = msgspec.defstruct(
            "UpdateConversation", [("id", uuid.UUID), ("title", title)]
        )
        self.send_message = msgspec.defstruct(
            "SendMessage",
            [
                ("conversation_id", uuid.UUID),
                ("content", _text(limits.max_content_chars, 1)),
                ("is_audio", bool, False),
                ("audio_data", _base64(limits.max_audio_base64_chars) | None, None),
            ],
        )
        self.get_messages = msgspec.defstruct(
            "GetMessages",
            [
                ("conversation_id", uuid.UUID),
                ("limit", _page(limits.max_messages_page), None),
                ("before", uuid.UUID | None, None),
            ],
        )
        self.update_settings = msgspec.defstruct(
            "UpdateSettings",
            [
                ("selected_model", str | None, None),
                ("voice_settings", VoicePatch | None, None),
                ("assistant_personality", _text(limits.max_personality_chars) | None, None),
            ],
        )
        self.text_to_speech = msgspec.defstruct(
            "TextToSpeech",
            [
                ("text", _text(limits.max_tts_chars)),
                ("voice_settings", VoicePatch | None, None),
                ("format", Literal["wav", "mp3"], "wav"),
                ("stream", bool, False),
            ],
        )
        self.speech_to_text = msgspec.defstruct(
            "SpeechToText",
            [
                ("audio_data", _base64(limits.max_audio_base64_chars)),
                ("language", _text(35) | None, None),
            ],
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
