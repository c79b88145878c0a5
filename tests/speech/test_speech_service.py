"""SpeechService: validation before the engine, limits, the timeout edge."""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator
from contextlib import aclosing

import pytest
import trio
import trio.testing

from pichat_trio.errors import InvalidInput, UnsupportedAudio, UpstreamUnavailable
from pichat_trio.models import VoiceSettings
from pichat_trio.ports import AudioFormat, PcmAudio, Synthesis
from pichat_trio.services.speech import SpeechService

from .speech_support import make_wav


class StubEngine:
    """Records calls; answers at once, or after ``delay`` seconds of trio time."""

    name = "stub"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[tuple[str, object]] = []
        self.stream_closed = False

    async def synthesize(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> Synthesis:
        self.calls.append(("synthesize", text))
        await trio.sleep(self.delay)
        return Synthesis(audio=b"RIFF...", content_type="audio/wav")

    async def synthesize_stream(
        self, text: str, voice: VoiceSettings, audio_format: AudioFormat
    ) -> AsyncGenerator[bytes, None]:
        self.calls.append(("stream", text))
        try:
            yield b"first"
            await trio.sleep(self.delay)
            yield b"second"
        finally:
            self.stream_closed = True

    async def recognize(self, audio: PcmAudio, language: str, *, owner: str = "") -> str:
        self.calls.append(("recognize", (audio.sample_rate, audio.channels, language)))
        await trio.sleep(self.delay)
        return "  hello there \n"

    async def aclose(self) -> None:
        pass


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


VOICE = VoiceSettings()


async def test_text_to_speech_goes_to_the_engine() -> None:
    engine = StubEngine()
    service = SpeechService(engine)
    assert service.engine_name == "stub"
    result = await service.text_to_speech("Hi", VOICE, "wav")
    assert result.audio == b"RIFF..." and engine.calls == [("synthesize", "Hi")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "payload.text: must not be empty"),
        ("  \n\t", "payload.text: must not be empty"),
        ("x" * 5001, "payload.text: at most 5000 characters"),
    ],
)
async def test_bad_text_is_refused_before_the_engine(text: str, message: str) -> None:
    engine = StubEngine()
    service = SpeechService(engine)
    with pytest.raises(InvalidInput, match=message):
        await service.text_to_speech(text, VOICE, "wav")
    with pytest.raises(InvalidInput, match=message):
        service.text_to_speech_stream(
            text, VOICE, "wav"
        )  # refused at the call, not at the first chunk
    assert engine.calls == []


async def test_exactly_the_limit_is_accepted() -> None:
    service = SpeechService(StubEngine())
    await service.text_to_speech("x" * 5000, VOICE, "wav")


async def test_timeout_is_upstream_unavailable(autojump_clock: trio.testing.MockClock) -> None:
    service = SpeechService(StubEngine(delay=31), timeout=30)
    with pytest.raises(UpstreamUnavailable, match="did not answer within 30 s"):
        await service.text_to_speech("Hi", VOICE, "wav")
    with pytest.raises(UpstreamUnavailable, match="within 30 s"):
        await service.speech_to_text(b64(make_wav(0.1)), "en-US")


async def test_stream_timeout_covers_each_chunk(autojump_clock: trio.testing.MockClock) -> None:
    engine = StubEngine(delay=31)
    service = SpeechService(engine, timeout=30)
    chunks = []
    with pytest.raises(UpstreamUnavailable):
        async with aclosing(service.text_to_speech_stream("Hi", VOICE, "wav")) as stream:
            async for chunk in stream:
                chunks.append(chunk)
    assert chunks == [b"first"] and engine.stream_closed


async def test_closing_the_stream_closes_the_engines_stream() -> None:
    engine = StubEngine()
    service = SpeechService(engine)
    async with aclosing(service.text_to_speech_stream("Hi", VOICE, "wav")) as stream:
        async for _chunk in stream:
            break
    assert engine.stream_closed


async def test_speech_to_text_decodes_validates_and_strips() -> None:
    engine = StubEngine()
    service = SpeechService(engine)
    text = await service.speech_to_text(b64(make_wav(1, rate=44100, channels=2)), "pl-PL")
    assert text == "hello there"
    assert engine.calls == [("recognize", (44100, 2, "pl-PL"))]


@pytest.mark.parametrize(
    ("audio", "error", "message"),
    [
        ("%%% not base64 %%%", InvalidInput, "payload.audio_data: not valid base64"),
        (b64(b"ID3\x03" + bytes(500)), UnsupportedAudio, r"not a WAV file \(no RIFF header\)"),
        (b64(make_wav(0.2, bits=8)), UnsupportedAudio, "8-bit samples are not supported"),
        (b64(make_wav(61, rate=8000)), UnsupportedAudio, "audio is 61.0 s long; the limit is 60 s"),
        (b64(make_wav(0.2, rate=96000)), UnsupportedAudio, "sample rate 96000 Hz is outside"),
    ],
)
async def test_bad_audio_is_refused_before_the_engine(
    audio: str, error: type[Exception], message: str
) -> None:
    engine = StubEngine()
    service = SpeechService(engine)
    with pytest.raises(error, match=message):
        await service.speech_to_text(audio, "en-US")
    with pytest.raises(error, match=message):
        service.decode_wav(audio)
    assert engine.calls == []


async def test_audio_over_the_byte_limit() -> None:
    service = SpeechService(StubEngine(), max_audio_bytes=4096)
    with pytest.raises(InvalidInput, match="audio is larger than 4 KiB"):
        await service.speech_to_text(b64(make_wav(1)), "en-US")


@pytest.mark.parametrize("language", ["", "english please", "pl_PL", "x" * 40, "en-US\r\nX: y"])
async def test_language_must_be_a_tag(language: str) -> None:
    with pytest.raises(InvalidInput, match=r"payload\.language: expected a language tag"):
        await SpeechService(StubEngine()).speech_to_text(b64(make_wav(0.1)), language)


def test_decode_wav_returns_the_file_as_sent() -> None:
    wav = make_wav(0.1)
    assert SpeechService(StubEngine()).decode_wav(b64(wav)) == wav


def test_language_for_accent() -> None:
    assert SpeechService.language_for_accent("polish") == "pl-PL"
    assert SpeechService.language_for_accent("British") == "en-GB"
    with pytest.raises(InvalidInput, match="unknown accent 'klingon'; one of polish, american"):
        SpeechService.language_for_accent("klingon")
