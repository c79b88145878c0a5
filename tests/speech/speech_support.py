"""Helpers for the speech tests: test audio, the espeak-ng skip marker."""

from __future__ import annotations

import math
import shutil
import struct
from array import array

import pytest

from pichat_trio.ports import PcmAudio
from pichat_trio.wav import parse_wav

__all__ = ["make_wav", "needs_espeak", "pcm_of"]

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)


def make_wav(
    seconds: float = 0.5,
    *,
    rate: int = 16000,
    channels: int = 1,
    bits: int = 16,
    tag: int = 1,
    data_size: int | None = None,
    extra_chunks: bytes = b"",
) -> bytes:
    """A WAV of a quiet tone, with every header field a test may want to break."""
    width = bits // 8
    frames = int(seconds * rate)
    if bits == 16:
        tone = array("h", (int(3000 * math.sin(n / 8)) for n in range(frames * channels)))
        pcm = tone.tobytes()
    else:
        pcm = bytes(frames * channels * width)
    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, bits
    )
    size = len(pcm) if data_size is None else data_size
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + extra_chunks
        + b"data"
        + struct.pack("<I", size)
        + pcm
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm_of(wav: bytes) -> PcmAudio:
    """Parse a WAV with generous limits: for audio a test made or received."""
    return parse_wav(wav, max_seconds=600.0, max_bytes=1 << 30)
