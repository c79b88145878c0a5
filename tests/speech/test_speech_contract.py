"""The SpeechEngine contract, passed by every engine: offline and Azure-on-fake."""

from __future__ import annotations

import shutil
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import cast

import pytest
import trio

from pichat_trio.adapters.speech.azure import AzureSpeechEngine
from pichat_trio.adapters.speech.local import OfflineSpeechEngine
from pichat_trio.errors import InvalidInput
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech
from pichat_trio.models import VoiceSettings
from pichat_trio.ports import SpeechEngine

from .speech_support import pcm_of

GUARD = 20  # seconds


def stream(engine: SpeechEngine, text: str) -> AsyncGenerator[bytes, None]:
    """The port promises an iterator; every engine returns a closable generator."""
    return cast(AsyncGenerator[bytes, None], engine.synthesize_stream(text, VoiceSettings(), "wav"))


@pytest.fixture(params=["offline", "azure"])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[SpeechEngine]:
    if request.param == "offline":
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
        yield OfflineSpeechEngine()
        return
    async with open_fake_azure_speech(FakeAzureSpeech(key="contract-key")) as fake:
        yield AzureSpeechEngine(key=fake.key, host=fake.host)


async def test_synthesize_returns_a_wav(engine: SpeechEngine) -> None:
    with trio.fail_after(GUARD):
        result = await engine.synthesize("Good morning.", VoiceSettings(), "wav")
    assert result.content_type == "audio/wav"
    pcm = pcm_of(result.audio)
    assert pcm.channels == 1 and pcm.duration > 0.1


async def test_stream_is_a_wav_of_unknown_length(engine: SpeechEngine) -> None:
    with trio.fail_after(GUARD):
        async with aclosing(stream(engine, "Good morning.")) as s:
            chunks = [chunk async for chunk in s]
    assert chunks[0][:4] == b"RIFF" and chunks[0][40:44] == b"\xff\xff\xff\xff"
    assert pcm_of(b"".join(chunks)).duration > 0.1


async def test_closing_a_stream_early_returns_at_once(engine: SpeechEngine) -> None:
    with trio.fail_after(GUARD):
        async with aclosing(stream(engine, "word " * 500)) as s:
            async for _chunk in s:
                break


@pytest.mark.parametrize(
    ("voice", "field"),
    [
        (VoiceSettings(accent="martian"), "payload.voice_settings.accent"),
        (VoiceSettings(gender="other"), "payload.voice_settings.gender"),
        (VoiceSettings(speed=3.0), "payload.voice_settings.speed"),
    ],
)
async def test_bad_voice_settings_are_invalid_input(
    engine: SpeechEngine, voice: VoiceSettings, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await engine.synthesize("hi", voice, "wav")
    assert caught.value.field == field


async def test_recognize_returns_words_stripped(engine: SpeechEngine) -> None:
    """Speech in, words out: the engine's own speech of four digits. How many words the
    offline recogniser gets right is test_speech_offline's; the Azure fake answers its
    configured phrase."""
    with trio.fail_after(GUARD):
        spoken = await engine.synthesize("one two three four", VoiceSettings(), "wav")
        text = await engine.recognize(pcm_of(spoken.audio), "en-US")
    assert text.split() and text == text.strip()
    if isinstance(engine, AzureSpeechEngine):
        assert text == "Hello from the fake."


async def test_aclose_is_idempotent(engine: SpeechEngine) -> None:
    await engine.aclose()
    await engine.aclose()
