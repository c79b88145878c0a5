"""Where an utterance starts and ends, from a voice detector's frame decisions.

Sans-IO and clock-free: time is the count of samples received, so the end
of speech is ``silence_ms`` of audio judged silent after the last voiced
frame, never a timer. A pause shorter than that inside an utterance does
not end it. Speech starts after ``start_ms`` of voiced frames at or above
``threshold_dbfs``; the session raises the threshold while its own answer
is playing on a client without echo cancellation (half-duplex), so the
loudspeaker's echo is not taken for the user.

The audio of an utterance begins ``preroll_ms`` before its detected start
(a detector needs a few frames to be sure; the recogniser needs the onset).
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from collections import deque
from dataclasses import dataclass

from ...ports import VoiceDetector

__all__ = [
    "DEFAULT_THRESHOLD_DBFS",
    "Endpointer",
    "SpeechEnded",
    "SpeechStarted",
    "UtteranceAudio",
    "frame_dbfs",
]

DEFAULT_THRESHOLD_DBFS = -50.0  # about a quiet room's noise floor on a USB microphone
_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class SpeechStarted:
    sample: int  # where the voiced run that started it began


@dataclass(frozen=True)
class UtteranceAudio:
    pcm: bytes  # the next part of the utterance, in order


@dataclass(frozen=True)
class SpeechEnded:
    last_voiced_sample: int  # one past the last sample of the last voiced frame
    forced: bool = False  # ended by the client (``voice_end``), not by silence


EndpointEvent = SpeechStarted | UtteranceAudio | SpeechEnded


def frame_dbfs(frame: bytes) -> float:
    """The RMS level of 16-bit little-endian PCM, in dB below full scale."""
    samples = array("h")
    samples.frombytes(frame)
    if sys.byteorder == "big":
        samples.byteswap()
    if not samples:
        return -math.inf
    power = sum(map(operator.mul, samples, samples)) / len(samples)
    return 10 * math.log10(power / (_FULL_SCALE * _FULL_SCALE)) if power else -math.inf


class Endpointer:
    """Feed it PCM in any slices; it returns what those samples decided."""

    def __init__(
        self,
        detector: VoiceDetector,
        sample_rate: int,
        silence_ms: int,
        *,
        start_ms: int = 90,
        preroll_ms: int = 300,
        threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
    ) -> None:
        self._detector = detector
        self._frame_bytes = 2 * detector.frame_samples
        self._rate = sample_rate
        self.silence_ms = silence_ms
        self.start_ms = start_ms
        self.threshold_dbfs = threshold_dbfs
        self._pending = bytearray()
        self._position = 0  # samples judged so far
        self._preroll: deque[bytes] = deque(maxlen=max(1, _frames(preroll_ms, self._ms_per_frame)))
        self._run = 0  # consecutive loud voiced frames while not in speech
        self._run_start = 0
        self._in_speech = False
        self._last_voiced = 0  # sample after the last voiced frame
        self._silent = 0  # frames since it

    @property
    def _ms_per_frame(self) -> float:
        return 1000 * (self._frame_bytes // 2) / self._rate

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def position(self) -> int:
        """Samples judged so far: the stream's clock."""
        return self._position

    def feed(self, pcm: bytes) -> list[EndpointEvent]:
        self._pending += pcm
        events: list[EndpointEvent] = []
        size = self._frame_bytes
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            self._judge(frame, events)
        return events

    def end(self) -> list[EndpointEvent]:
        """The client says it has finished speaking: end the utterance now."""
        if not self._in_speech:
            return []
        events: list[EndpointEvent] = []
        if self._pending:
            events.append(UtteranceAudio(bytes(self._pending)))
            self._pending.clear()
        self._in_speech = False
        events.append(SpeechEnded(self._last_voiced, forced=True))
        return events

    def reset(self) -> None:
        """Forget a run of speech in progress (its utterance was dropped)."""
        self._in_speech = False
        self._run = 0
        self._preroll.clear()

    def _judge(self, frame: bytes, events: list[EndpointEvent]) -> None:
        start = self._position
        self._position += len(frame) // 2
        voiced = self._detector.is_speech(frame)
        if self._in_speech:
            events.append(UtteranceAudio(frame))
            if voiced:
                self._last_voiced, self._silent = self._position, 0
                return
            self._silent += 1
            if self._silent * self._ms_per_frame >= self.silence_ms:
                self._in_speech = False
                self._preroll.clear()
                events.append(SpeechEnded(self._last_voiced))
            return
        loud = voiced and frame_dbfs(frame) >= self.threshold_dbfs
        self._preroll.append(frame)
        if not loud:
            self._run = 0
            return
        if self._run == 0:
            self._run_start = start
        self._run += 1
        if self._run * self._ms_per_frame >= self.start_ms:
            self._in_speech = True
            self._run = 0
            self._last_voiced, self._silent = self._position, 0
            events.append(SpeechStarted(self._run_start))
            events.append(UtteranceAudio(b"".join(self._preroll)))
            self._preroll.clear()


def _frames(ms: int, ms_per_frame: float) -> int:
    return math.ceil(ms / ms_per_frame)
