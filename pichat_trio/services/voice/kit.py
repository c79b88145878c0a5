"""What a server needs to open voice sessions: the engines, picked at start-up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...ports import PcmSpeaker, StreamingRecognizer, VoiceDetector

__all__ = ["VoiceKit"]


@dataclass(frozen=True)
class VoiceKit:
    """``detector(rate)`` makes one voice detector per session (they keep state), and
    ``speaker()`` one speaker (it may keep a connection open for the session)."""

    engine: str  # "azure" or "offline"
    detector: Callable[[int], VoiceDetector]
    recognizer: StreamingRecognizer
    speaker: Callable[[], PcmSpeaker]
    sample_rates: tuple[int, ...] = (16000,)
    barge_in_dbfs: float = -30.0  # VOICE_BARGE_IN_DBFS
    barge_in_ms: int = 300  # VOICE_BARGE_IN_MS
    threshold_dbfs: float = -50.0
