"""Helpers for the voice tests: espeak-ng speech as 16 kHz PCM, silence, noise."""

from __future__ import annotations

import functools
import random
import shutil
import subprocess
from array import array

import pytest

from pichat_trio.adapters.speech.pcm import resample_slice, resampled_length
from pichat_trio.wav import parse_wav

__all__ = ["RATE", "mix", "needs_espeak", "noise", "silence", "spoken"]

RATE = 16000
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)


@functools.cache
def spoken(text: str, voice: str = "en-us+f2") -> bytes:
    """``text`` spoken by espeak-ng, as mono 16-bit PCM at 16 kHz."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True
    ).stdout
    pcm = parse_wav(wav, max_seconds=600.0, max_bytes=1 << 30)
    return resample_slice(pcm, RATE, 0, resampled_length(pcm, RATE))


def silence(ms: int) -> bytes:
    return bytes(2 * RATE * ms // 1000)


def noise(ms: int, amplitude: int, seed: int = 1) -> bytes:
    """White noise of peak ``amplitude``: what a fan or a hiss in the room sounds like."""
    rng = random.Random(seed)
    count = RATE * ms // 1000
    return array("h", (rng.randint(-amplitude, amplitude) for _ in range(count))).tobytes()


def mix(a: bytes, b: bytes) -> bytes:
    """Sample-wise sum of two PCM clips (the shorter padded with silence), clipped."""
    x, y = array("h"), array("h")
    x.frombytes(a)
    y.frombytes(b)
    if len(x) < len(y):
        x, y = y, x
    y.extend([0] * (len(x) - len(y)))
    return array("h", (max(-32768, min(32767, p + q)) for p, q in zip(x, y, strict=True))).tobytes()
