"""What of an answer's audio has been sent, and what of it the user has heard.

Chunks are one continuous PCM stream: chunk k starts at the summed length of
chunks 0..k-1. A chunk counts as heard when it starts before the position
the client reported (``played_ms``), clamped to the audio sent. Without
reports the position is estimated from the time since the first chunk went
out, as if the client played it at once and in real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Chunk", "Playback"]


@dataclass(frozen=True)
class Chunk:
    seq: int
    text: str
    start_ms: float
    duration_ms: float


@dataclass
class Playback:
    message_id: str
    sample_rate: int
    chunks: list[Chunk] = field(default_factory=list)
    sent_ms: float = 0.0
    reported_ms: float | None = None  # the last voice_playback, clamped
    first_sent_at: float | None = None  # trio time of the first chunk
    generating: bool = True  # the answer is still being generated

    def add(self, text: str, pcm_bytes: int, now: float) -> Chunk:
        duration = 1000 * (pcm_bytes // 2) / self.sample_rate
        chunk = Chunk(len(self.chunks), text, self.sent_ms, duration)
        self.chunks.append(chunk)
        self.sent_ms += duration
        if self.first_sent_at is None:
            self.first_sent_at = now
        return chunk

    @property
    def next_seq(self) -> int:
        return len(self.chunks)

    def clamp(self, played_ms: float) -> float:
        return max(0.0, min(float(played_ms), self.sent_ms))

    def report(self, played_ms: float) -> float:
        self.reported_ms = self.clamp(played_ms)
        return self.reported_ms

    def position(self, now: float) -> float:
        """Where playback is: the last report, else the estimate from the clock."""
        if self.reported_ms is not None:
            return self.reported_ms
        if self.first_sent_at is None:
            return 0.0
        return self.clamp(1000 * (now - self.first_sent_at))

    def playing(self, now: float) -> bool:
        """Still being generated, or sent audio not yet played out."""
        return self.generating or self.position(now) < self.sent_ms

    def heard(self, played_ms: float) -> str:
        """The text of the chunks that had started by ``played_ms``."""
        played = self.clamp(played_ms)
        return "".join(c.text for c in self.chunks if c.start_ms < played)

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)
