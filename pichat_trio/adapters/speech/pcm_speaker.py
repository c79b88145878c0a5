"""A sentence spoken as raw PCM at the rate a voice session plays.

Voice sessions send one continuous PCM stream per answer, at the session's
rate; engines speak WAV at their own (espeak-ng 22.05 kHz, Azure 24 kHz).
This asks the engine for the sentence's WAV and converts it (downmix,
linear resampling) in a worker thread, off the event loop.
"""

from __future__ import annotations

import math

import trio

from ...models import VoiceSettings
from ...ports import PcmAudio, SpeechEngine
from ...wav import parse_wav
from .pcm import downmix, resample_slice, resampled_length

__all__ = ["EnginePcmSpeaker"]

_MAX_BYTES = 64 * 1024 * 1024  # a sanity bound on one sentence's audio from our own engine


class EnginePcmSpeaker:
    def __init__(self, engine: SpeechEngine) -> None:
        self._engine = engine

    async def speak(self, text: str, voice: VoiceSettings, sample_rate: int) -> bytes:
        synthesis = await self._engine.synthesize(text, voice, "wav")
        return await trio.to_thread.run_sync(_convert, synthesis.audio, sample_rate)

    async def aclose(self) -> None:
        """Nothing kept: each sentence is one call of the engine."""


def _convert(wav: bytes, rate: int) -> bytes:
    pcm: PcmAudio = downmix(parse_wav(wav, max_seconds=math.inf, max_bytes=_MAX_BYTES))
    return resample_slice(pcm, rate, 0, resampled_length(pcm, rate))
