"""The offline engine: espeak-ng speaks, pocketsphinx listens, for real."""

from __future__ import annotations

from contextlib import aclosing

import pytest
import trio

from pichat_trio.adapters.speech.local import OfflineSpeechEngine
from pichat_trio.adapters.speech.pcm import resample_slice, resampled_length
from pichat_trio.errors import InvalidInput, UpstreamUnavailable
from pichat_trio.models import VoiceSettings
from pichat_trio.ports import PcmAudio

from .speech_support import make_wav, needs_espeak, pcm_of

GUARD = 20  # seconds; a round trip takes about one
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven"]


@pytest.fixture(scope="module")
def engine() -> OfflineSpeechEngine:
    """One engine for the module, so pocketsphinx's model loads once."""
    return OfflineSpeechEngine()


@needs_espeak
async def test_round_trip_recovers_the_words(engine: OfflineSpeechEngine) -> None:
    """espeak-ng's voice is far from the speech pocketsphinx's general model
    was trained on; whole sentences come back garbled ("hello world the
    weather is nice today" -> "hello world where there is to"), but digits,
    short and acoustically distinct, survive. Five of seven leaves room for
    a different espeak-ng or pocketsphinx build: this one hears six, and
    five to seven across voices, speeds and resamplers.
    """
    voice = VoiceSettings(gender="female", accent="american", speed=1.0)
    with trio.fail_after(GUARD):
        spoken = await engine.synthesize(" ".join(NUMBERS), voice, "wav")
        assert spoken.content_type == "audio/wav"
        pcm = pcm_of(spoken.audio)
        assert pcm.channels == 1 and 1.0 < pcm.duration < 6.0
        text = await engine.recognize(pcm, "en-US")
    heard = text.split()
    assert sum(word in heard for word in NUMBERS) >= 5, text


@needs_espeak
async def test_stream_matches_the_whole_synthesis(engine: OfflineSpeechEngine) -> None:
    voice = VoiceSettings(gender="female", accent="british", speed=1.5)
    with trio.fail_after(GUARD):
        whole = await engine.synthesize("Streaming, bit by bit.", voice, "wav")
        async with aclosing(engine.synthesize_stream("Streaming, bit by bit.", voice, "wav")) as s:
            chunks = [chunk async for chunk in s]
    assert len(chunks) >= 2
    assert chunks[0][:4] == b"RIFF" and chunks[0][40:44] == b"\xff\xff\xff\xff"
    assert pcm_of(b"".join(chunks)) == pcm_of(whole.audio)


@needs_espeak
async def test_closing_a_stream_kills_espeak(engine: OfflineSpeechEngine) -> None:
    voice = VoiceSettings()
    with trio.fail_after(GUARD):
        async with aclosing(engine.synthesize_stream("word " * 2000, voice, "wav")) as s:
            async for _chunk in s:
                break
    # Reaching here means the child was killed and reaped; a finished 2,000-word
    # synthesis would have taken several seconds.


@needs_espeak
async def test_polish_text_goes_through_stdin_as_utf8(engine: OfflineSpeechEngine) -> None:
    voice = VoiceSettings(gender="female", accent="polish", speed=0.5)
    with trio.fail_after(GUARD):
        result = await engine.synthesize("Zażółć gęślą jaźń; -v --help $(rm -rf /)", voice, "wav")
    assert pcm_of(result.audio).duration > 1.0


async def test_mp3_needs_azure(engine: OfflineSpeechEngine) -> None:
    with pytest.raises(InvalidInput, match=r"payload\.format: .*MP3 needs Azure Speech"):
        await engine.synthesize("hi", VoiceSettings(), "mp3")


async def test_missing_espeak_says_how_to_install() -> None:
    engine = OfflineSpeechEngine(espeak_path="/nonexistent/espeak-ng")
    with pytest.raises(UpstreamUnavailable, match="apt-get install espeak-ng"):
        await engine.synthesize("hi", VoiceSettings(), "wav")
    with pytest.raises(UpstreamUnavailable, match="apt-get install espeak-ng"):
        async with aclosing(engine.synthesize_stream("hi", VoiceSettings(), "wav")) as s:
            async for _chunk in s:
                pass


async def test_other_languages_need_azure(engine: OfflineSpeechEngine) -> None:
    pcm = pcm_of(make_wav(0.2))
    with pytest.raises(InvalidInput, match=r"payload\.language: .*only knows en-US, not pl-PL"):
        await engine.recognize(pcm, "pl-PL")


async def test_silence_is_empty_text(engine: OfflineSpeechEngine) -> None:
    pcm = PcmAudio(sample_rate=16000, channels=1, frames=bytes(32000))
    with trio.fail_after(GUARD):
        assert await engine.recognize(pcm, "en-US") == ""


async def test_cancellation_stops_between_slices(
    engine: OfflineSpeechEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A minute of audio is fed to pocketsphinx a second at a time; a cancel lands after
    the slice in progress, not after the minute, and leaves the decoder usable."""
    pcm = pcm_of(make_wav(60, rate=48000, channels=2))
    await engine.recognize(PcmAudio(16000, 1, bytes(3200)), "en-US")  # load the model first
    feed = OfflineSpeechEngine._feed
    fed: list[int] = []
    decoding = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def counting_feed(decoder: object, audio: PcmAudio, start: int, stop: int) -> None:
        feed(decoder, audio, start, stop)
        fed.append(start)
        if len(fed) == 5:  # past the 3 s priming pass: the minute is being decoded
            token.run_sync_soon(decoding.set)

    monkeypatch.setattr(OfflineSpeechEngine, "_feed", staticmethod(counting_feed))
    with trio.fail_after(120):  # a hang guard, not a speed bound (a loaded machine)
        async with trio.open_nursery() as nursery:
            scope = trio.CancelScope()

            async def recognise() -> None:
                with scope:
                    await engine.recognize(pcm, "en-US")

            nursery.start_soon(recognise)
            await decoding.wait()
            at_cancel = len(fed)
            scope.cancel()
        assert scope.cancelled_caught
        assert len(fed) <= at_cancel + 1  # at most the slice that was in its thread
        assert len(fed) < 60
        # The decoder is usable again: the interrupted utterance was ended.
        assert await engine.recognize(PcmAudio(16000, 1, bytes(32000)), "en-US") == ""


def test_resampling_joins_slices_seamlessly() -> None:
    pcm = pcm_of(make_wav(0.3, rate=44100, channels=2))
    total = resampled_length(pcm, 16000)
    assert total == int(0.3 * 44100) * 16000 // 44100
    whole = resample_slice(pcm, 16000, 0, total)
    pieces = b"".join(resample_slice(pcm, 16000, i, i + 1000) for i in range(0, total, 1000))
    assert pieces == whole and len(whole) == 2 * total


@needs_espeak
async def test_results_do_not_depend_on_the_previous_request(
    engine: OfflineSpeechEngine,
) -> None:
    voice = VoiceSettings(gender="male", accent="british")
    with trio.fail_after(GUARD):
        spoken = pcm_of((await engine.synthesize("seven eight nine", voice, "wav")).audio)
        other = pcm_of((await engine.synthesize("something else", voice, "wav")).audio)
        first = await engine.recognize(spoken, "en-US")
        await engine.recognize(other, "en-US")
        assert await engine.recognize(spoken, "en-US") == first
