"""The protocol's limits (docs/protocol.md, "Limits"), in one place for every layer."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True)
class Limits:
    max_content_chars: int = 32_000
    max_title_chars: int = 200
    max_personality_chars: int = 4_000
    max_tts_chars: int = 5_000
    max_audio_seconds: float = 60.0
    max_audio_bytes: int = 10 * 1024 * 1024
    max_conversations_page: int = 200
    max_messages_page: int = 500

    @property
    def max_audio_base64_chars(self) -> int:
        """The base64 text of ``max_audio_bytes``, so a huge payload is refused unread."""
        return (self.max_audio_bytes * 4) // 3 + 4
