"""Streaming recognisers: Azure's SDK push stream against the fake, and pocketsphinx.

Both get espeak-ng speech in 20 ms slices, as a session feeds them, and must
report partial hypotheses before the end of the audio and a final text after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.lowlevel

from pichat_trio.adapters.speech.azure import AzureSpeechEngine
from pichat_trio.adapters.speech.azure_stream import AzureStreamingRecognizer
from pichat_trio.adapters.speech.local_stream import OfflineStreamingRecognizer
from pichat_trio.errors import InvalidInput, UpstreamError
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech
from pichat_trio.ports import StreamingRecognizer

from .voice_support import RATE, needs_espeak, silence, spoken

pytestmark = needs_espeak

PHRASE = "play some music please"
VOICE = "en-us+klatt5"  # the voice pocketsphinx hears best (bench/speech_accuracy.py)
SLICE = 2 * RATE * 20 // 1000


@pytest.fixture
async def fake() -> AsyncIterator[FakeAzureSpeech]:
    fake = FakeAzureSpeech(key="stream-key", stt_text="Play some music, please.")
    async with open_fake_azure_speech(fake) as served:
        yield served


async def _recognise(recognizer: StreamingRecognizer, pcm: bytes) -> tuple[list[str], str, int]:
    """Partials, the final text, and how many partials came before ``finish``."""
    partials: list[str] = []
    async with recognizer.open_stream("en-US", RATE, partials.append) as stream:
        for start in range(0, len(pcm), SLICE):
            await stream.feed(pcm[start : start + SLICE])
            await trio.lowlevel.checkpoint()
        # the service answers asynchronously: let the hypotheses of the audio sent arrive
        for _ in range(200):
            if partials:
                break
            await trio.sleep(0.01)
        before = len(partials)
        text = await stream.finish()
    return partials, text, before


async def test_azure_push_stream_gives_partials_then_the_final(fake: FakeAzureSpeech) -> None:
    recognizer = AzureStreamingRecognizer(AzureSpeechEngine(key=fake.key, host=fake.host))
    partials, text, before = await _recognise(recognizer, silence(200) + spoken(PHRASE, VOICE))
    assert text == "Play some music, please."
    assert before >= 1
    assert partials[0] == "play"
    assert all(p.startswith("play") for p in partials)
    connection = await fake.wait_connection()
    assert "/speech/recognition/" in connection.path
    assert "language=en-US" in connection.path
    audio = connection.audio_received
    assert spoken(PHRASE, VOICE)[:3200] in audio  # the pushed PCM reached the service


async def test_azure_stream_refused_credentials(fake: FakeAzureSpeech) -> None:
    recognizer = AzureStreamingRecognizer(AzureSpeechEngine(key="wrong", host=fake.host))
    with pytest.raises(UpstreamError), trio.fail_after(30):
        await _recognise(recognizer, spoken("hello"))


async def test_two_azure_streams_at_once(fake: FakeAzureSpeech) -> None:
    recognizer = AzureStreamingRecognizer(AzureSpeechEngine(key=fake.key, host=fake.host))
    results: list[str] = []

    async def one() -> None:
        results.append((await _recognise(recognizer, spoken(PHRASE, VOICE)))[1])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one)
        nursery.start_soon(one)
    assert results == ["Play some music, please."] * 2


async def test_offline_streaming_decoder_gives_partials_then_the_final() -> None:
    recognizer = OfflineStreamingRecognizer(max_streams=1)
    _, text, before = await _recognise(recognizer, silence(200) + spoken(PHRASE, VOICE))
    assert before >= 2  # hypotheses while the audio was still coming
    assert "music" in text
    # a second utterance reuses the decoder and is decoded the same way
    _, again, _ = await _recognise(recognizer, silence(200) + spoken(PHRASE, VOICE))
    assert again == text


async def test_offline_stream_left_early_frees_its_decoder() -> None:
    recognizer = OfflineStreamingRecognizer(max_streams=1)
    with trio.move_on_after(5) as scope:
        async with recognizer.open_stream("en-US", RATE, lambda _t: None) as stream:
            await stream.feed(spoken("hello there"))
            scope.cancel()
    _, text, _ = await _recognise(recognizer, spoken(PHRASE, VOICE))
    assert "music" in text


async def test_offline_stream_refuses_other_languages() -> None:
    recognizer = OfflineStreamingRecognizer()
    with pytest.raises(InvalidInput):
        async with recognizer.open_stream("pl-PL", RATE, lambda _t: None):
            pass
