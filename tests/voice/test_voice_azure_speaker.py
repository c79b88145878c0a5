"""A voice session's Azure speaker: one synthesis connection kept, and dropped when cut off."""

from __future__ import annotations

import trio

from pichat_trio.adapters.speech.azure import AzureSpeechEngine
from pichat_trio.adapters.speech.azure_voice import AzureSessionSpeaker
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech, sine_pcm
from pichat_trio.models import VoiceSettings


async def test_sentences_share_one_connection_and_a_cut_one_is_dropped() -> None:
    fake = FakeAzureSpeech(key="speaker-key", tts_audio=sine_pcm(0.5, rate=16000))
    async with open_fake_azure_speech(fake):
        speaker = AzureSessionSpeaker(AzureSpeechEngine(key=fake.key, host=fake.host))
        first = await speaker.speak("One.", VoiceSettings(), 16000)
        second = await speaker.speak("Two.", VoiceSettings(), 16000)
        assert first == second == sine_pcm(0.5, rate=16000)  # raw PCM, as sent
        assert len(fake.connections) == 1 and len(fake.ssml) == 2
        fake.tts_chunk_bytes, fake.tts_chunk_delay = 320, 0.05  # a slow sentence
        with trio.move_on_after(0.2):
            await speaker.speak("Three, cut off.", VoiceSettings(), 16000)
        with trio.fail_after(10):
            await fake.connections[0].wait_closed()  # the cut synthesizer was closed
        fake.tts_chunk_delay = 0.0
        await speaker.speak("Four.", VoiceSettings(), 16000)
        assert len(fake.connections) == 2  # a fresh one for the next sentence
        await speaker.aclose()
        with trio.fail_after(10):
            await fake.connections[1].wait_closed()
