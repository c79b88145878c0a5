"""The speech service: what the protocol layer calls for text_to_speech and
speech_to_text.

It validates input (text length, base64, WAV format and limits) before any
engine is involved, applies its one timeout at this edge, and leaves the
work to a ``SpeechEngine``. It knows nothing of WebSockets or frames.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator

import trio

from ..errors import InvalidInput, UpstreamUnavailable
from ..metrics import Metrics
from ..models import VoiceSettings
from ..ports import AudioFormat, PcmAudio, SpeechEngine, Synthesis
from ..voices import language_for_accent
from ..wav import decode_audio_base64, parse_wav

__all__ = ["SpeechService", "language_for_accent"]

_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}")  # the whole string


class SpeechService:
    """Text to speech and speech to text over one engine, with limits.

    ``timeout`` bounds a whole call (and, for a stream, each wait for the
    next chunk); past it the engine's work is cancelled and the caller gets
    ``UpstreamUnavailable``.
    """

    def __init__(
        self,
        engine: SpeechEngine,
        *,
        max_text_chars: int = 5000,
        max_audio_seconds: float = 60,
        max_audio_bytes: int = 10 * 1024 * 1024,
        timeout: float = 30,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = Metrics() if metrics is None else metrics
        self._max_text_chars = max_text_chars
        self._max_audio_seconds = max_audio_seconds
        self._max_audio_bytes = max_audio_bytes
        self._timeout = timeout

    @property
    def engine_name(self) -> str:
        return self._engine.name

    @staticmethod
    def language_for_accent(accent: str) -> str:
        return language_for_accent(accent)

    def _check_text(self, text: str) -> None:
        if not text.strip():
            raise InvalidInput("payload.text", "must not be empty")
        if len(text) > self._max_text_chars:
            raise InvalidInput("payload.text", f"at most {self._max_text_chars} characters")

    def _timed_out(self) -> UpstreamUnavailable:
        return UpstreamUnavailable(f"the speech service did not answer within {self._timeout:g} s")

    async def text_to_speech(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> Synthesis:
        self._check_text(text)
        with self._metrics.speech_call("text_to_speech"):
            try:
                with trio.fail_after(self._timeout):
                    return await self._engine.synthesize(text, voice, audio_format)
            except trio.TooSlowError:
                raise self._timed_out() from None

    def text_to_speech_stream(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> AsyncGenerator[bytes, None]:
        """Validate now, then stream; wrap the result in ``contextlib.aclosing``.

        Closing the iterator closes the engine's stream, which stops the
        engine's work (kills espeak-ng, stops the SDK).
        """
        self._check_text(text)
        return self._stream(text, voice, audio_format)

    async def _stream(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> AsyncGenerator[bytes, None]:
        chunks = self._engine.synthesize_stream(text, voice, audio_format)
        try:
            with self._metrics.speech_call("text_to_speech_stream"):
                while True:
                    # The deadline covers each wait, never a yield: a cancel scope
                    # must not stay open while the consumer runs.
                    try:
                        with trio.fail_after(self._timeout):
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                    except trio.TooSlowError:
                        raise self._timed_out() from None
                    yield chunk
        finally:
            await _aclose(chunks)

    def decode_wav(self, audio_base64: str) -> bytes:
        """The WAV file in a base64 payload, validated against the limits.

        For callers that store the audio as sent (audio messages).
        """
        data = decode_audio_base64(audio_base64, self._max_audio_bytes)
        self._parse(data)
        return data

    def _parse(self, data: bytes) -> PcmAudio:
        return parse_wav(data, max_seconds=self._max_audio_seconds, max_bytes=self._max_audio_bytes)

    @property
    def engine(self) -> SpeechEngine:
        return self._engine

    async def speech_to_text(self, audio_base64: str, language: str, *, user: str = "") -> str:
        """The text spoken in a base64 WAV; ``""`` when nothing was recognised.

        ``user`` (an id) lets the engine share itself fairly between users.
        The timeout covers the wait for the engine as well as the work.
        """
        if not _LANGUAGE_TAG.fullmatch(language):
            raise InvalidInput("payload.language", "expected a language tag such as en-US or pl-PL")
        pcm = self._parse(decode_audio_base64(audio_base64, self._max_audio_bytes))
        with self._metrics.speech_call("speech_to_text"):
            try:
                with trio.fail_after(self._timeout):
                    text = await self._engine.recognize(pcm, language, owner=user)
            except trio.TooSlowError:
                raise self._timed_out() from None
        return text.strip()


async def _aclose(chunks: AsyncIterator[bytes]) -> None:
    """Close the engine's stream if it is a generator (the port promises an iterator)."""
    if isinstance(chunks, AsyncGenerator):
        await chunks.aclose()
