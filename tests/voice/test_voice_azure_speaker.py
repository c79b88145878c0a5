"""A voice session's Azure speakers: one synthesis connection kept, dropped when cut off.

Two speak the same protocol: the SDK's kept synthesizer, and the socket speaker
that writes the SDK's messages itself (``AZURE_SPEECH_STREAMING``).
"""

from __future__ import annotations

import contextlib

import pytest
import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

from pichat_trio.adapters.speech.azure import AzureSpeechEngine
from pichat_trio.adapters.speech.azure_socket_speaker import AzureSocketSpeaker
from pichat_trio.adapters.speech.azure_voice import AzureSessionSpeaker
from pichat_trio.adapters.speech.azure_wire import parse_message, text_message
from pichat_trio.errors import UpstreamError, UpstreamUnavailable
from pichat_trio.fakes.azure_speech import (
    FakeAzureSpeech,
    FakeConnection,
    open_fake_azure_speech,
    sine_pcm,
)
from pichat_trio.models import VoiceSettings
from pichat_trio.ports import PcmSpeaker

SPEAKERS = {"sdk": AzureSessionSpeaker, "socket": AzureSocketSpeaker}


def _speaker(kind: str, key: str, host: str) -> PcmSpeaker:
    return SPEAKERS[kind](AzureSpeechEngine(key=key, host=host))


@pytest.mark.parametrize("kind", sorted(SPEAKERS))
async def test_sentences_share_one_connection_and_a_cut_one_is_dropped(kind: str) -> None:
    fake = FakeAzureSpeech(key="speaker-key", tts_audio=sine_pcm(0.5, rate=16000))
    async with open_fake_azure_speech(fake):
        speaker = _speaker(kind, fake.key, fake.host)
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


def _conversation(connection: FakeConnection) -> list[tuple[str, tuple[str, ...]]]:
    return [
        (m.path, tuple(sorted(m.headers))) for m in connection.messages if m.path != "telemetry"
    ]


async def test_the_socket_speaker_speaks_as_the_sdk_does() -> None:
    fake = FakeAzureSpeech(key="speaker-key", tts_audio=sine_pcm(0.3, rate=16000))
    async with open_fake_azure_speech(fake):
        for kind in ("sdk", "socket"):
            speaker = _speaker(kind, fake.key, fake.host)
            await speaker.speak("One.", VoiceSettings(), 16000)
            await speaker.speak("Two.", VoiceSettings(speed=1.5), 16000)
            await speaker.aclose()
        sdk, socket = fake.connections
        assert socket.path == sdk.path == "/cognitiveservices/websocket/v1"
        assert socket.key_sent and len(socket.headers["x-connectionid"]) == 32
        assert _conversation(socket) == _conversation(sdk)
        assert socket.bodies("ssml") == sdk.bodies("ssml")  # the same documents
        for connection in (sdk, socket):
            context = parse_message(_raw(connection, "synthesis.context")).body
            assert context["synthesis"]["audio"]["outputFormat"] == "raw-16khz-16bit-mono-pcm"
        ids = [m.headers.get("x-requestid") for m in socket.messages if m.path != "speech.config"]
        assert len(set(ids)) == 2 and None not in ids  # a turn per sentence


def _raw(connection: FakeConnection, path: str) -> str:
    body = connection.bodies(path)[0]
    return f"Path: {path}\r\n\r\n{body}"


async def test_the_socket_speaker_reports_refused_credentials() -> None:
    async with open_fake_azure_speech(FakeAzureSpeech(key="right")) as fake:
        speaker = _speaker("socket", "wrong", fake.host)
        with pytest.raises(UpstreamError):
            await speaker.speak("Hello.", VoiceSettings(), 16000)


async def test_the_socket_speaker_reopens_a_connection_the_service_closed_while_idle() -> None:
    """The service closes a kept connection after each sentence: the next sentence
    finds it gone before any answer, and is spoken on a new one."""
    opened: list[int] = []

    async def service(request: WebSocketRequest) -> None:
        ws = await request.accept()
        opened.append(1)
        with contextlib.suppress(ConnectionClosed):
            while True:
                message = await ws.get_message()
                head = str(message).partition("\r\n\r\n")[0]  # an SSML body is no JSON
                if "Path: ssml" in head:
                    rid = head.split("X-RequestId: ")[1].split("\r\n")[0]
                    await ws.send_message(_audio(rid, b"\x01\x00" * 160))
                    await ws.send_message(text_message("turn.end", {}, rid))
                    await ws.aclose()  # idle from now on, and gone

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, service, "127.0.0.1", 0, None)
        speaker = _speaker("socket", "k", f"ws://127.0.0.1:{server.port}")
        assert await speaker.speak("One.", VoiceSettings(), 16000) == b"\x01\x00" * 160
        assert await speaker.speak("Two.", VoiceSettings(), 16000) == b"\x01\x00" * 160
        assert len(opened) == 2
        await speaker.aclose()
        nursery.cancel_scope.cancel()


def _audio(request_id: str, payload: bytes) -> bytes:
    head = f"Path: audio\r\nX-RequestId: {request_id}\r\n".encode()
    return len(head).to_bytes(2, "big") + head + payload


async def test_the_socket_speaker_reports_an_unreachable_service() -> None:
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    speaker = _speaker("socket", "k", f"ws://127.0.0.1:{port}")
    with pytest.raises(UpstreamUnavailable):
        await speaker.speak("Hello.", VoiceSettings(), 16000)


async def test_the_socket_speaker_reports_a_failed_tls_handshake() -> None:
    async with open_fake_azure_speech(FakeAzureSpeech(key="k")) as fake:
        speaker = _speaker("socket", "k", fake.host.replace("ws://", "wss://"))
        with pytest.raises(UpstreamUnavailable):
            await speaker.speak("Hello.", VoiceSettings(), 16000)
