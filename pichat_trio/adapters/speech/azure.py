"""Azure Speech through its SDK (``azure-cognitiveservices-speech``).

The SDK is blocking and callback-driven, with its own native threads and its
own WebSocket. Each call builds its own synthesizer or recogniser (one
connection per call: simpler than sharing one, at the cost of a handshake)
and, however the call ends, stops it and closes its connection in a
shielded, time-bounded cleanup, so a cancelled request never leaves the
service speaking or listening.

Errors become domain errors here: unreachable or overloaded service ->
``UpstreamUnavailable``; refused credentials or a failed request ->
``UpstreamError``. The subscription key is never logged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import azure.cognitiveservices.speech as sdk
import trio

from ...errors import PichatError, UpstreamError, UpstreamUnavailable
from ...models import VoiceSettings
from ...ports import AudioFormat, PcmAudio, Synthesis
from ...voices import azure_voice
from ...wav import wav_header
from .pcm import downmix
from .ssml import build_ssml

__all__ = [
    "AzureRecognizerBase",
    "AzureSpeechEngine",
    "ssml_for",
    "stop_in_background",
    "stop_synthesizer",
]

log = logging.getLogger(__name__)

_FORMATS = {
    "wav": (sdk.SpeechSynthesisOutputFormat.Riff24Khz16BitMonoPcm, "audio/wav"),
    "mp3": (sdk.SpeechSynthesisOutputFormat.Audio24Khz48KBitRateMonoMp3, "audio/mpeg"),
}
# Streaming asks for headerless PCM: in RIFF formats the SDK repeats a header
# in every chunk. We send one header, with the unknown-length marker, first.
_STREAM_FORMATS = {
    "wav": sdk.SpeechSynthesisOutputFormat.Raw24Khz16BitMonoPcm,
    "mp3": sdk.SpeechSynthesisOutputFormat.Audio24Khz48KBitRateMonoMp3,
}
_STREAM_RATE = 24000
# Chunks of streamed audio waiting for the consumer, each one service message
# (a few KB, tens of milliseconds of audio). When full, the SDK's callback
# thread waits, which pushes back on the SDK rather than growing a buffer.
_STREAM_BUFFER_CHUNKS = 16
_CLEANUP_SECONDS = 5.0  # stopping the SDK and closing its connection
_UNAVAILABLE = {
    sdk.CancellationErrorCode.ConnectionFailure,
    sdk.CancellationErrorCode.ServiceTimeout,
    sdk.CancellationErrorCode.ServiceUnavailable,
    sdk.CancellationErrorCode.TooManyRequests,
}
_REFUSED = {sdk.CancellationErrorCode.AuthenticationFailure, sdk.CancellationErrorCode.Forbidden}


class AzureSpeechEngine:
    """Azure neural voices and recognition in any locale Azure knows.

    ``host`` replaces the regional endpoint, for a speech container or a test
    fake (``ws://127.0.0.1:5000``; the SDK accepts plain ``ws://``).
    """

    name = "azure"

    def __init__(self, *, key: str, region: str | None = None, host: str | None = None) -> None:
        if not key:
            raise ValueError("an Azure Speech key is required")
        if not region and not host:
            raise ValueError("an Azure Speech region or host is required")
        self._key = key
        self._region = region
        self._host = host

    def __repr__(self) -> str:
        where = self._host or self._region
        return f"AzureSpeechEngine({where!r})"

    def websocket_url(self, service: str, path: str, **query: str) -> str:
        """The service's own WebSocket address, for the clients that speak its protocol
        without the SDK (``azure_wire``): ``service`` is ``"stt"`` or ``"tts"``."""
        if self._host:
            base = self._host.rstrip("/")
            for plain, secure in (("http://", "ws://"), ("https://", "wss://")):
                if base.startswith(plain):
                    base = secure + base[len(plain) :]
        else:
            base = f"wss://{self._region}.{service}.speech.microsoft.com"
        return base + path + ("?" + urlencode(query) if query else "")

    def websocket_headers(self, connection_id: str) -> list[tuple[bytes, bytes]]:
        """The handshake's headers: the key (never logged) and the connection's id."""
        return [
            (b"Ocp-Apim-Subscription-Key", self._key.encode()),
            (b"X-ConnectionId", connection_id.encode()),
        ]

    def redact(self, text: str) -> str:
        """``text`` with the key, should it be there, replaced."""
        return text.replace(self._key, "<key>")

    def speech_config(self) -> Any:
        """A fresh ``SpeechConfig`` for this service (key, region or host)."""
        return self._config()

    def error_for(self, details: Any) -> PichatError:
        """The domain error for SDK cancellation details."""
        return self._error(details)

    def failure_for(self, result: Any) -> PichatError:
        """The domain error for a synthesis result that is not a success."""
        return self._failure(result)

    def synthesizer(self, output_format: Any) -> Any:
        """A new SDK synthesizer for this service; the caller stops and closes it."""
        return self._synthesizer(output_format)

    def _config(self) -> Any:
        if self._host:
            return sdk.SpeechConfig(subscription=self._key, host=self._host)
        return sdk.SpeechConfig(subscription=self._key, region=self._region)

    def _synthesizer(self, output_format: Any) -> Any:
        config = self._config()
        config.set_speech_synthesis_output_format(output_format)
        return sdk.SpeechSynthesizer(speech_config=config, audio_config=None)

    # ------------------------------------------------------------ speaking

    async def synthesize(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> Synthesis:
        ssml = _ssml(text, voice)
        output_format, content_type = _FORMATS[audio_format]
        synthesizer = self._synthesizer(output_format)
        try:
            future = synthesizer.speak_ssml_async(ssml)
            result = await trio.to_thread.run_sync(future.get, abandon_on_cancel=True)
        finally:
            await _shielded(_stop_synthesizer, synthesizer)
        if result.reason != sdk.ResultReason.SynthesizingAudioCompleted:
            raise self._failure(result)
        return Synthesis(audio=bytes(result.audio_data), content_type=content_type)

    async def synthesize_stream(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> AsyncGenerator[bytes, None]:
        """Audio as the service sends it. Close the generator to stop the SDK."""
        ssml = _ssml(text, voice)
        send, receive = trio.open_memory_channel[bytes | _Finished](_STREAM_BUFFER_CHUNKS)
        forward = functools.partial(_forward, send, trio.lowlevel.current_trio_token())
        synthesizer = self._synthesizer(_STREAM_FORMATS[audio_format])
        synthesizer.synthesizing.connect(lambda event: forward(bytes(event.result.audio_data)))
        synthesizer.synthesis_completed.connect(lambda event: forward(_Finished(event.result)))
        synthesizer.synthesis_canceled.connect(lambda event: forward(_Finished(event.result)))
        try:
            synthesizer.speak_ssml_async(ssml)  # the events above carry the outcome
            if audio_format == "wav":
                yield wav_header(_STREAM_RATE, 1)
            async for item in receive:
                if isinstance(item, _Finished):
                    if item.result.reason != sdk.ResultReason.SynthesizingAudioCompleted:
                        raise self._failure(item.result)
                    return
                yield item
        finally:
            receive.close()  # wakes an SDK thread blocked on a full channel
            await _shielded(_stop_synthesizer, synthesizer)

    # ----------------------------------------------------------- listening

    async def recognize(self, audio: PcmAudio, language: str, *, owner: str = "") -> str:
        """All phrases of ``audio``, joined; ``""`` when there is no speech.

        Continuous recognition, not ``recognize_once``: the latter stops at
        the first pause and would drop the rest of a 60-second recording.
        """
        stream_format = sdk.audio.AudioStreamFormat(
            samples_per_second=audio.sample_rate, bits_per_sample=16, channels=1
        )
        stream = sdk.audio.PushAudioInputStream(stream_format=stream_format)
        config = self._config()
        config.speech_recognition_language = language
        recognizer = sdk.SpeechRecognizer(
            speech_config=config, audio_config=sdk.audio.AudioConfig(stream=stream)
        )
        recognition = _Recognition(trio.lowlevel.current_trio_token())
        recognizer.recognized.connect(recognition.on_recognized)
        recognizer.canceled.connect(recognition.on_canceled)
        recognizer.session_stopped.connect(recognition.on_stopped)
        try:
            # Downmixing a minute of stereo in Python takes a few hundred ms:
            # not on the event loop.
            await trio.to_thread.run_sync(_push_all, stream, audio)
            # Not waiting for this future: on a refused connection it resolves
            # only after the SDK's retries; the events report the outcome first.
            recognizer.start_continuous_recognition_async()
            await recognition.done.wait()
        finally:
            stop_in_background(recognizer, stream)
            del recognizer, stream  # the last references go with the worker thread
        if recognition.failure is not None:
            raise self._error(recognition.failure)
        return " ".join(recognition.phrases)

    # -------------------------------------------------------------- errors

    def _failure(self, result: Any) -> PichatError:
        if result.reason == sdk.ResultReason.Canceled:
            return self._error(result.cancellation_details)
        log.warning("Azure Speech returned an unexpected result: %s", result.reason)
        return UpstreamError("Azure Speech failed")

    def _error(self, details: Any) -> PichatError:
        """Map SDK cancellation details; the log line has the details, never the key."""
        # Synthesis details name it ``error_code``, recognition details ``code``.
        code = details.error_code if hasattr(details, "error_code") else details.code
        text = str(details.error_details or "").replace(self._key, "<key>")
        log.warning("Azure Speech cancelled (%s): %s", code, text)
        if code in _UNAVAILABLE:
            return UpstreamUnavailable("Azure Speech could not be reached")
        if code in _REFUSED:
            return UpstreamError("Azure Speech refused the credentials")
        return UpstreamError("Azure Speech failed")

    async def aclose(self) -> None:
        """Nothing to release: every call closes its own connection."""


class AzureRecognizerBase:
    """What the two live recognisers (``azure_stream``, ``azure_socket``) share: the
    service they listen with, and no model to load."""

    name = "azure"

    def __init__(self, engine: AzureSpeechEngine) -> None:
        self._engine = engine

    async def prepare(self) -> None:
        """Nothing to load: each utterance opens its own connection."""


@dataclass(frozen=True)
class _Finished:
    result: Any


@dataclass
class _Recognition:
    """What the recogniser's callbacks (on SDK threads) report to the trio task."""

    token: trio.lowlevel.TrioToken
    phrases: list[str] = field(default_factory=list)
    failure: Any = None
    done: trio.Event = field(default_factory=trio.Event)

    def on_recognized(self, event: Any) -> None:
        if event.result.reason == sdk.ResultReason.RecognizedSpeech and event.result.text:
            self.phrases.append(event.result.text)

    def on_canceled(self, event: Any) -> None:
        if event.cancellation_details.reason == sdk.CancellationReason.Error:
            self.failure = event.cancellation_details
            self._finish()

    def on_stopped(self, _event: Any) -> None:
        self._finish()

    def _finish(self) -> None:
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(self.done.set, trio_token=self.token)


def _forward(
    send: trio.MemorySendChannel[bytes | _Finished],
    token: trio.lowlevel.TrioToken,
    item: bytes | _Finished,
) -> None:
    """Called on an SDK thread: hand an item to the trio task, waiting for room."""
    # The consumer may be gone (closed channel, finished run): the cleanup is
    # stopping the SDK, so the item is simply dropped.
    with contextlib.suppress(
        trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError
    ):
        trio.from_thread.run(send.send, item, trio_token=token)


def _push_all(stream: Any, audio: PcmAudio) -> None:
    stream.write(downmix(audio).frames)
    stream.close()  # the end of the audio: the service finishes the last phrase


def ssml_for(text: str, voice: VoiceSettings) -> str:
    """The SSML document that speaks ``text`` with the user's voice settings."""
    return _ssml(text, voice)


def stop_synthesizer(synthesizer: Any) -> None:
    """Blocking: stop a synthesizer and close its connection (in a worker thread)."""
    _stop_synthesizer(synthesizer)


def _ssml(text: str, voice: VoiceSettings) -> str:
    name, locale = azure_voice(voice)
    return build_ssml(text, name, locale, voice.speed)


def _stop_synthesizer(synthesizer: Any) -> None:
    synthesizer.stop_speaking_async().get()
    _close(sdk.Connection.from_speech_synthesizer(synthesizer))


def _stop_recognizer(recognizer: Any, stream: Any) -> None:
    stream.close()
    recognizer.stop_continuous_recognition_async().get()
    _close(sdk.Connection.from_recognizer(recognizer))


def _close(connection: Any) -> None:
    try:
        connection.close()
    except RuntimeError as exc:  # the SDK refuses to close what it never opened
        log.debug("Azure Speech connection not closed: %s", str(exc).splitlines()[-1:])


def stop_in_background(recognizer: Any, stream: Any) -> None:
    """Stop and release a recogniser on a worker thread, without waiting.

    Both can block for seconds: the SDK neither lets a connection close while
    a turn is open nor stops before the service ends the turn (it waits for
    the answer, at most 10 s), and releasing a recogniser whose connection
    failed blocks for 10 s as well. So a worker thread does it and drops the
    last references; the trio task returns at once and the event loop never
    runs the release. The thread outlives the request by at most the SDK's
    bound; the audio was all sent, so nothing more is spent meanwhile.
    """

    def stop() -> None:
        _stop_recognizer(recognizer, stream)

    def report(result: Any) -> None:  # an outcome.Outcome, on the worker thread
        try:
            result.unwrap()
        except Exception:
            log.warning("stopping the Azure Speech recogniser failed", exc_info=True)

    trio.lowlevel.start_thread_soon(stop, report)


async def _shielded(stop: Callable[..., None], *args: Any) -> None:
    """Run a blocking SDK cleanup in a thread, shielded from the caller's cancellation."""
    with trio.move_on_after(_CLEANUP_SECONDS, shield=True) as scope:
        try:
            await trio.to_thread.run_sync(stop, *args, abandon_on_cancel=True)
        except Exception:
            log.warning("stopping the Azure Speech SDK failed", exc_info=True)
    if scope.cancelled_caught:
        log.warning("stopping the Azure Speech SDK took more than %s s", _CLEANUP_SECONDS)
