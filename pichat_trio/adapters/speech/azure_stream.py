"""Streaming recognition with Azure Speech: the SDK's push stream, continuous mode.

One recogniser per utterance: its audio is written to a
``PushAudioInputStream`` as the microphone delivers it, the service's
hypotheses come back as ``recognizing`` events (partials) and its phrases
as ``recognized``. The session's own endpointer decides where the
utterance ends; closing the push stream then makes the service finish the
last phrase at once and stop the session, so the final text follows the end
of speech by one round trip. Leaving the stream's block, however it is
left, stops the recogniser on a worker thread (``stop_in_background``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import azure.cognitiveservices.speech as sdk
import trio

from .azure import AzureRecognizerBase, AzureSpeechEngine, stop_in_background

__all__ = ["AzureStreamingRecognizer"]

log = logging.getLogger(__name__)


class AzureStreamingRecognizer(AzureRecognizerBase):
    """Live recognition over the same service (key, region or host) as ``engine``."""

    @asynccontextmanager
    async def open_stream(
        self, language: str, sample_rate: int, on_partial: Callable[[str], None]
    ) -> AsyncIterator[_AzureStream]:
        stream_format = sdk.audio.AudioStreamFormat(
            samples_per_second=sample_rate, bits_per_sample=16, channels=1
        )
        push = sdk.audio.PushAudioInputStream(stream_format=stream_format)
        config = self._engine.speech_config()
        config.speech_recognition_language = language
        recognizer = sdk.SpeechRecognizer(
            speech_config=config, audio_config=sdk.audio.AudioConfig(stream=push)
        )
        stream = _AzureStream(self._engine, push, trio.lowlevel.current_trio_token(), on_partial)
        recognizer.recognizing.connect(stream.on_recognizing)
        recognizer.recognized.connect(stream.on_recognized)
        recognizer.canceled.connect(stream.on_canceled)
        recognizer.session_stopped.connect(stream.on_stopped)
        # Not waiting for this future: the events report the outcome (see azure.py).
        recognizer.start_continuous_recognition_async()
        try:
            yield stream
        finally:
            stop_in_background(recognizer, push)
            del recognizer, push


class _AzureStream:
    """What the SDK's callbacks (on its threads) report to the trio task."""

    def __init__(
        self,
        engine: AzureSpeechEngine,
        push: Any,
        token: trio.lowlevel.TrioToken,
        on_partial: Callable[[str], None],
    ) -> None:
        self._engine = engine
        self._push = push
        self._token = token
        self._on_partial = on_partial
        self._phrases: list[str] = []
        self._failure: Any = None
        self._done = trio.Event()
        self._closed = False

    async def feed(self, pcm: bytes) -> None:
        if self._failure is not None:
            raise self._engine.error_for(self._failure)
        if pcm and not self._closed:
            self._push.write(pcm)  # copies into the SDK's buffer; its thread sends it

    async def finish(self) -> str:
        self._closed = True
        self._push.close()  # the end of the audio: the service ends the last phrase
        await self._done.wait()
        if self._failure is not None:
            raise self._engine.error_for(self._failure)
        return " ".join(self._phrases)

    # SDK threads

    def on_recognizing(self, event: Any) -> None:
        text = " ".join([*self._phrases, event.result.text])
        self._to_trio(self._on_partial, text.strip())

    def on_recognized(self, event: Any) -> None:
        if event.result.reason == sdk.ResultReason.RecognizedSpeech and event.result.text:
            self._phrases.append(event.result.text)

    def on_canceled(self, event: Any) -> None:
        if event.cancellation_details.reason == sdk.CancellationReason.Error:
            self._failure = event.cancellation_details
            self._to_trio(self._done.set)

    def on_stopped(self, _event: Any) -> None:
        self._to_trio(self._done.set)

    def _to_trio(self, fn: Callable[..., None], *args: Any) -> None:
        # Queued for trio's thread, in order; the SDK's thread does not wait for it.
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(_logged, fn, *args)


def _logged(fn: Callable[..., None], *args: Any) -> None:
    """``fn`` in trio's thread: a failure is logged, never raised into the run loop."""
    try:
        fn(*args)
    except Exception:
        log.exception("a recognition event could not be handled")
