"""The Azure adapter through the real Speech SDK, against the local fake.

These run the SDK's native WebSocket client over plain ws:// on 127.0.0.1,
so they use real time (the SDK's threads do not know trio's clock), with
short deadlines so that a hang fails fast.
"""

from __future__ import annotations

from contextlib import aclosing

import pytest
import trio

from pichat_trio.adapters.speech import open_speech_engine
from pichat_trio.adapters.speech.azure import AzureSpeechEngine
from pichat_trio.errors import UpstreamError, UpstreamUnavailable
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech, sine_pcm
from pichat_trio.models import VoiceSettings

from .speech_support import make_wav, pcm_of

GUARD = 10  # seconds; every call here takes well under one
POLISH = VoiceSettings(gender="female", accent="polish", speed=1.25)


async def test_synthesis_sends_ssml_and_returns_the_fakes_audio(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    fake_azure.tts_audio = sine_pcm(0.3)
    with trio.fail_after(GUARD):
        result = await azure_engine.synthesize('Zażółć "gęślą" jaźń & co', POLISH, "wav")
    assert result.content_type == "audio/wav"
    pcm = pcm_of(result.audio)
    assert (pcm.sample_rate, pcm.channels) == (24000, 1)
    assert pcm.frames == fake_azure.tts_audio
    (ssml,) = fake_azure.ssml
    assert '<voice name="pl-PL-ZofiaNeural">' in ssml
    assert 'xml:lang="pl-PL"' in ssml and '<prosody rate="+25%">' in ssml
    assert "Zażółć &quot;gęślą&quot; jaźń &amp; co" in ssml
    (connection,) = fake_azure.connections
    assert connection.path == "/cognitiveservices/websocket/v1"
    assert connection.key_sent
    assert "test-key-1234" not in repr(connection)
    (context,) = connection.bodies("synthesis.context")
    assert "raw-24khz-16bit-mono-pcm" in context
    with trio.fail_after(GUARD):
        await connection.wait_closed()  # every call closes its own connection


async def test_ssml_injection_stays_text(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    attack = '</prosody></voice></speak><voice name="en-US-GuyNeural">pwned'
    with trio.fail_after(GUARD):
        await azure_engine.synthesize(attack, VoiceSettings(), "wav")
    (ssml,) = fake_azure.ssml
    assert ssml.count("<voice ") == 1 and ssml.count("</speak>") == 1
    assert "&lt;/speak&gt;&lt;voice name=&quot;en-US-GuyNeural&quot;&gt;pwned" in ssml


async def test_mp3_is_returned_as_sent(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    fake_azure.tts_audio = b"\xff\xf3" + bytes(range(256)) * 40  # opaque to the SDK
    with trio.fail_after(GUARD):
        result = await azure_engine.synthesize("hi", VoiceSettings(), "mp3")
    assert result.content_type == "audio/mpeg"
    assert result.audio == fake_azure.tts_audio
    (context,) = fake_azure.connections[0].bodies("synthesis.context")
    assert "audio-24khz-48kbitrate-mono-mp3" in context


async def test_stream_yields_header_then_the_fakes_audio(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    fake_azure.tts_audio = sine_pcm(0.5)
    fake_azure.tts_chunk_bytes = 4000
    with trio.fail_after(GUARD):
        async with aclosing(
            azure_engine.synthesize_stream("hello", VoiceSettings(), "wav")
        ) as stream:
            chunks = [chunk async for chunk in stream]
    assert len(chunks) >= 4  # the header, then the fake's chunks as they came
    assert pcm_of(b"".join(chunks)).frames == fake_azure.tts_audio


async def test_cancelling_mid_synthesis_closes_the_sdk_connection(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    fake_azure.tts_chunk_bytes = 2400  # 50 ms of audio per message
    fake_azure.tts_chunk_delay = 0.2  # 10 messages over 2 s
    with trio.move_on_after(0.5) as scope:
        await azure_engine.synthesize("a long answer", VoiceSettings(), "wav")
    assert scope.cancelled_caught
    cancelled_at = scope.deadline
    assert trio.current_time() - cancelled_at < 0.5  # the cleanup is quick
    (connection,) = fake_azure.connections
    with trio.fail_after(GUARD):
        await connection.wait_closed()
    assert connection.closed_at is not None
    assert connection.closed_at - cancelled_at < 1.0
    assert connection.audio_messages_sent < 5  # the fake never got to the end


async def test_closing_a_stream_mid_synthesis_closes_the_sdk_connection(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    fake_azure.tts_chunk_bytes = 2400
    fake_azure.tts_chunk_delay = 0.2
    with trio.fail_after(GUARD):
        async with aclosing(azure_engine.synthesize_stream("long", VoiceSettings(), "wav")) as s:
            async for _chunk in s:
                if fake_azure.connections and fake_azure.connections[0].audio_messages_sent:
                    break
        closed_at = trio.current_time()
        connection = fake_azure.connections[0]
        await connection.wait_closed()
    assert connection.closed_at is not None and connection.closed_at - closed_at < 1.0
    assert connection.audio_messages_sent < 5


async def test_recognition_returns_the_fakes_phrase(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    fake_azure.stt_text = "Dzień dobry, jak się masz?"
    wav = make_wav(1.5, rate=16000)
    pcm = pcm_of(wav)
    with trio.fail_after(GUARD):
        text = await azure_engine.recognize(pcm, "pl-PL")
    assert text == "Dzień dobry, jak się masz?"
    (connection,) = fake_azure.connections
    assert connection.path.endswith("?language=pl-PL")
    audio = connection.audio_received
    assert audio[:4] == b"RIFF"
    assert audio[44:] == pcm.frames  # every sample reached the service, once


async def test_recognition_downmixes_stereo(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    pcm = pcm_of(make_wav(0.5, rate=44100, channels=2))
    with trio.fail_after(GUARD):
        assert await azure_engine.recognize(pcm, "en-US") == "Hello from the fake."
    audio = fake_azure.connections[0].audio_received
    assert audio[22:24] == b"\x01\x00"  # the RIFF header the SDK sent says mono
    assert len(audio) - 44 == len(pcm.frames) // 2


async def test_no_match_is_empty_text(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    fake_azure.stt_text = None
    with trio.fail_after(GUARD):
        assert await azure_engine.recognize(pcm_of(make_wav(1)), "en-US") == ""


async def test_wrong_key_is_upstream_error() -> None:
    async with open_fake_azure_speech(FakeAzureSpeech(key="right")) as fake:
        engine = AzureSpeechEngine(key="wrong-secret", host=fake.host)
        with trio.fail_after(GUARD), pytest.raises(UpstreamError, match="refused the credentials"):
            await engine.synthesize("hi", VoiceSettings(), "wav")
        with trio.fail_after(GUARD), pytest.raises(UpstreamError, match="refused the credentials"):
            await engine.recognize(pcm_of(make_wav(0.2)), "en-US")


async def test_unreachable_service_is_upstream_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_fake_azure_speech() as fake:
        host = fake.host
    engine = AzureSpeechEngine(key="secret-key-5678", host=host)  # nobody listens there now
    with trio.fail_after(GUARD), pytest.raises(UpstreamUnavailable, match="could not be reached"):
        await engine.synthesize("hi", VoiceSettings(), "wav")
    with trio.fail_after(GUARD), pytest.raises(UpstreamUnavailable):
        await engine.recognize(pcm_of(make_wav(0.2)), "en-US")
    assert "Connection" in caplog.text  # the operator gets the SDK's details...
    assert "secret-key-5678" not in caplog.text  # ...never the key


async def test_open_speech_engine_picks_azure_with_a_key(fake_azure: FakeAzureSpeech) -> None:
    async with open_speech_engine(azure_key=fake_azure.key, azure_endpoint=fake_azure.host) as e:
        assert e.name == "azure"
        assert "test-key-1234" not in repr(e)
    async with open_speech_engine() as e:
        assert e.name == "offline"
    with pytest.raises(ValueError, match="AZURE_SPEECH_REGION"):
        async with open_speech_engine(azure_key="k"):
            pass


async def test_cancelling_mid_recognition_returns_at_once(
    fake_azure: FakeAzureSpeech, azure_engine: AzureSpeechEngine
) -> None:
    """The caller is released at once; the SDK hangs up when the turn ends.

    The SDK refuses to close a connection while a recognition turn is open
    and waits for the service to end it (at most 10 s), so the connection
    closes when the fake answers, not at the cancellation.
    """
    fake_azure.stt_delay = 1.5  # the fake sits on the audio
    pcm = pcm_of(make_wav(1))
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(azure_engine.recognize, pcm, "en-US")
            connection = await fake_azure.wait_connection()
            await connection.audio_ended.wait()  # the SDK now waits for the answer
            cancelled_at = trio.current_time()
            nursery.cancel_scope.cancel()
        assert trio.current_time() - cancelled_at < 0.2
        await connection.wait_closed()
    assert connection.closed_at is not None
    assert connection.closed_at - cancelled_at < 1.5 + 1.0
