"""A voice session's sentences spoken by Azure on one kept connection.

The engine's ``synthesize`` opens a synthesizer, and its connection, per call:
right for a single ``text_to_speech``, wasteful for the five to twenty
sentences of every spoken answer. A session's speaker keeps one SDK
synthesizer for the whole session, asking for raw PCM at the session's rate
(no resampling), and closes it with the session. A synthesis cut off by a
cancellation (a barge-in) stops the synthesizer and drops it: the next
sentence opens a fresh one, never one with a half-spoken answer queued.
"""

from __future__ import annotations

from typing import Any

import azure.cognitiveservices.speech as sdk
import trio

from ...models import VoiceSettings
from .azure import AzureSpeechEngine, ssml_for, stop_synthesizer
from .pcm_speaker import EnginePcmSpeaker

__all__ = ["AzureSessionSpeaker"]

_RAW = {
    8000: sdk.SpeechSynthesisOutputFormat.Raw8Khz16BitMonoPcm,
    16000: sdk.SpeechSynthesisOutputFormat.Raw16Khz16BitMonoPcm,
    48000: sdk.SpeechSynthesisOutputFormat.Raw48Khz16BitMonoPcm,
}
_CLEANUP_SECONDS = 5.0


class AzureSessionSpeaker:
    def __init__(self, engine: AzureSpeechEngine) -> None:
        self._engine = engine
        self._synthesizer: Any = None
        self._rate = 0
        self._fallback = EnginePcmSpeaker(engine)  # a rate Azure has no raw format for

    async def speak(self, text: str, voice: VoiceSettings, sample_rate: int) -> bytes:
        if sample_rate not in _RAW:
            return await self._fallback.speak(text, voice, sample_rate)
        if self._synthesizer is None or self._rate != sample_rate:
            await self.aclose()
            self._synthesizer = self._engine.synthesizer(_RAW[sample_rate])
            self._rate = sample_rate
        synthesizer = self._synthesizer
        done = False
        try:
            future = synthesizer.speak_ssml_async(ssml_for(text, voice))
            result = await trio.to_thread.run_sync(future.get, abandon_on_cancel=True)
            done = True
        finally:
            if not done:  # cancelled or failed mid-sentence: this one is not reused
                await self.aclose()
        if result.reason != sdk.ResultReason.SynthesizingAudioCompleted:
            await self.aclose()
            raise self._engine.failure_for(result)
        return bytes(result.audio_data)

    async def aclose(self) -> None:
        synthesizer, self._synthesizer = self._synthesizer, None
        if synthesizer is None:
            return
        with trio.move_on_after(_CLEANUP_SECONDS, shield=True):
            await trio.to_thread.run_sync(stop_synthesizer, synthesizer, abandon_on_cancel=True)
