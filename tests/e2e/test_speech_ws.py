"""Speech over the WebSocket: the offline engines, Azure through the real SDK and a
fake endpoint, bad audio, and voice messages kept in the audio store."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path

import pytest
import trio
from speech.speech_support import make_wav, needs_espeak
from support import make_settings, open_conversation, run_server

from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech, sine_pcm


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _wav_info(data: bytes) -> tuple[int, int, float]:
    with wave.open(io.BytesIO(data)) as reader:
        return (
            reader.getframerate(),
            reader.getsampwidth(),
            reader.getnframes() / reader.getframerate(),
        )


@needs_espeak
async def test_offline_round_trip_through_the_socket(server):
    async with server.client() as client:
        with trio.fail_after(60):
            spoken = await client.call(
                "text_to_speech",
                {"text": "one two three four five six seven"},
            )
            assert spoken["action"] == "text_to_speech_result", spoken
            payload = spoken["payload"]
            assert payload["content_type"] == "audio/wav" and payload["engine"] == "offline"
            audio = base64.b64decode(payload["audio_data"])
            rate, width, seconds = _wav_info(audio)
            assert width == 2 and 8000 <= rate <= 48000 and seconds > 1
            heard = await client.call(
                "speech_to_text", {"audio_data": payload["audio_data"], "language": "en-US"}
            )
    assert heard["action"] == "speech_to_text_result", heard
    assert heard["payload"]["language"] == "en-US" and heard["payload"]["engine"] == "offline"
    figures = server.app.metrics.registry
    for operation in ("text_to_speech", "speech_to_text"):
        labels = {"operation": operation, "outcome": "ok"}
        assert figures.get_sample_value("pichat_speech_calls_total", labels) == 1
    words = heard["payload"]["text"].split()
    # espeak-ng's synthetic voice and pocketsphinx's small model: digits survive well,
    # so at least 4 of the 7 must come back.
    assert len(set(words) & {"one", "two", "three", "four", "five", "six", "seven"}) >= 4, words


@needs_espeak
async def test_streamed_speech_arrives_in_order_and_is_one_wav(server):
    async with server.client() as client:
        with trio.fail_after(60):
            request_id = await client.request(
                "text_to_speech", {"text": "Hello from the Pi.", "stream": True}
            )
            chunks = []
            while True:
                frame = await client.expect("text_to_speech_chunk")
                assert frame["request_id"] == request_id
                chunks.append(frame["payload"])
                if frame["payload"]["final"]:
                    break
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert chunks[-1]["content_type"] == "audio/wav" and len(chunks) >= 2
    audio = b"".join(base64.b64decode(c["audio_data"]) for c in chunks)
    assert audio[:4] == b"RIFF"
    assert _wav_info(audio)[2] > 0.3


BAD_AUDIO = [
    ("not base64 at all!!", "invalid_request", "payload.audio_data"),
    (_b64(b"ID3\x04\x00" + bytes(2000)), "unsupported_audio", "WAV"),
    (_b64(make_wav(bits=8)), "unsupported_audio", "8-bit"),
    (_b64(make_wav(seconds=61, rate=8000)), "unsupported_audio", "61"),
    (_b64(make_wav(rate=96000)), "unsupported_audio", "96000"),
]


@pytest.mark.parametrize(("audio", "code", "says"), BAD_AUDIO)
async def test_bad_audio_gets_its_error(server, audio, code, says):
    async with server.client() as client:
        with trio.fail_after(20):
            reply = await client.call("speech_to_text", {"audio_data": audio})
            assert reply["action"] == "error"
            assert reply["payload"]["code"] == code, reply
            assert says in reply["payload"]["message"], reply
            assert reply["payload"]["request_action"] == "speech_to_text"
            assert (await client.call("ping"))["action"] == "pong"


async def test_bad_text_and_formats_get_their_error(server):
    async with server.client() as client:
        with trio.fail_after(20):
            for payload, field in [
                ({"text": ""}, "payload.text"),
                ({"text": "   "}, "payload.text"),
                ({"text": "x" * 5001}, "payload.text"),
                ({"text": "hi", "format": "mp3"}, "payload.format"),  # offline has no MP3
                (
                    {"text": "hi", "voice_settings": {"accent": "klingon"}},
                    "payload.voice_settings.accent",
                ),
            ]:
                reply = await client.call("text_to_speech", payload)
                assert reply["payload"]["code"] == "invalid_request", (payload, reply)
                assert reply["payload"]["message"].startswith(field), (payload, reply)
            reply = await client.call(
                "speech_to_text", {"audio_data": _b64(make_wav()), "language": "pl-PL"}
            )
            assert reply["payload"]["code"] == "invalid_request"
            assert "en-US" in reply["payload"]["message"]


async def test_voice_message_audio_is_kept_and_referenced(server):
    recording = make_wav(seconds=1.0)
    async with server.client() as client:
        with trio.fail_after(20):
            conversation_id = await open_conversation(client)
            sent = await client.call(
                "send_message",
                {
                    "conversation_id": conversation_id,
                    "content": "what's the weather",
                    "is_audio": True,
                    "audio_data": _b64(recording),
                },
            )
            assert sent["action"] == "message_sent", sent
            message = sent["payload"]
            assert message["is_audio"] is True and message["audio_file"]
            bad = await client.call(
                "send_message",
                {
                    "conversation_id": conversation_id,
                    "content": "x",
                    "audio_data": _b64(b"not a wav file at all"),
                },
            )
            assert bad["payload"]["code"] == "unsupported_audio"
            listed = await client.call("get_messages", {"conversation_id": conversation_id})
    stored = Path(server.settings.audio_dir) / message["audio_file"]
    assert stored.read_bytes() == recording
    assert [m["content"] for m in listed["payload"]["messages"]].count("x") == 0


async def test_azure_speech_through_the_sdk_and_a_fake_endpoint(tmp_path):
    pcm = sine_pcm(seconds=0.4)
    fake = FakeAzureSpeech(key="fake-speech-key", tts_audio=pcm, stt_text="Dzień dobry.")
    async with open_fake_azure_speech(fake):
        settings = make_settings(
            tmp_path,
            {"AZURE_SPEECH_KEY": "fake-speech-key", "AZURE_SPEECH_ENDPOINT": fake.host},
        )
        async with run_server(settings) as server, server.client() as client:
            with trio.fail_after(60):
                await client.call(
                    "update_settings", {"voice_settings": {"accent": "polish", "gender": "male"}}
                )
                spoken = await client.call("text_to_speech", {"text": "Cześć </speak> & <b>"})
                assert spoken["action"] == "text_to_speech_result", spoken
                assert spoken["payload"]["engine"] == "azure"
                audio = base64.b64decode(spoken["payload"]["audio_data"])
                heard = await client.call("speech_to_text", {"audio_data": _b64(make_wav())})
    assert audio.endswith(pcm)  # the fake's samples, behind the SDK's WAV header
    assert "pl-PL-MarekNeural" in fake.ssml[0]
    assert "Cześć &lt;/speak&gt; &amp; &lt;b&gt;" in fake.ssml[0]
    assert heard["payload"] == {"text": "Dzień dobry.", "language": "pl-PL", "engine": "azure"}
    assert any("language=pl-PL" in connection.path for connection in fake.connections)


async def test_a_client_leaving_mid_synthesis_closes_the_sdk_connection(tmp_path):
    fake = FakeAzureSpeech(
        tts_audio=sine_pcm(seconds=2.0), tts_chunk_bytes=4800, tts_chunk_delay=0.3
    )
    async with open_fake_azure_speech(fake):
        settings = make_settings(
            tmp_path, {"AZURE_SPEECH_KEY": fake.key, "AZURE_SPEECH_ENDPOINT": fake.host}
        )
        async with run_server(settings) as server:
            with trio.fail_after(30):
                async with server.client() as client:
                    await client.request("text_to_speech", {"text": "a long story", "stream": True})
                    connection = await fake.wait_connection(0)
                    for _ in range(2):  # the WAV header, then the first audio from the SDK
                        await client.expect("text_to_speech_chunk")
                left_at = trio.current_time()
                await connection.wait_closed()
    assert connection.closed_at is not None
    assert connection.closed_at - left_at < 2.0
    assert connection.audio_messages_sent < 2.0 * 24000 * 2 // 4800
