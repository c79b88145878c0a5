"""Protocol v1.1 on the wire: ``hello`` and the voice session's requests and frames.

Sans-IO: the request types of the voice actions (msgspec decodes and bounds
them) and the text of the frames a session sends (``voice_transcript``,
``voice_audio``). The handlers that hold a session are one layer up
(``dispatch/voice.py``).
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

import msgspec

from .wire import encode_event

__all__ = [
    "PROTOCOL_VERSION",
    "HelloPayload",
    "VoiceId",
    "VoicePosition",
    "VoiceStart",
    "audio_text",
    "transcript_text",
]

PROTOCOL_VERSION = "1.1"


class HelloPayload(msgspec.Struct):
    client: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    version: Annotated[str, msgspec.Meta(max_length=50)] | None = None


class VoiceStart(msgspec.Struct):
    sample_rate: int
    conversation_id: uuid.UUID | None = None
    language: Annotated[str, msgspec.Meta(max_length=35)] | None = None
    silence_ms: Annotated[int, msgspec.Meta(ge=200, le=5000)] = 600
    echo_cancellation: bool = False


class VoiceId(msgspec.Struct):
    voice_id: uuid.UUID


class VoicePosition(msgspec.Struct):
    voice_id: uuid.UUID
    message_id: uuid.UUID
    played_ms: Annotated[float, msgspec.Meta(ge=0)]


def transcript_text(voice_id: str, text: str, final: bool) -> str:
    return encode_event("voice_transcript", {"voice_id": voice_id, "text": text, "final": final})


def audio_text(
    voice_id: str, message_id: str, seq: int, text: str, pcm: bytes, sample_rate: int, final: bool
) -> str:
    payload: dict[str, Any] = {
        "voice_id": voice_id,
        "message_id": message_id,
        "seq": seq,
        "text": text,
        "audio_data": base64.b64encode(pcm).decode("ascii"),
        "content_type": f"audio/pcm;rate={sample_rate}",
        "final": final,
    }
    return encode_event("voice_audio", payload)
