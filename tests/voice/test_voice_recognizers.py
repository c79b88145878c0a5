"""Streaming recognisers: Azure's (the SDK's push stream, and the same protocol spoken
over a trio socket) against the fake, and pocketsphinx.

Both get espeak-ng speech in 20 ms slices, as a session feeds them, and must
report partial hypotheses before the end of the audio and a final text after.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import trio
import trio.lowlevel
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from pichat_trio.adapters.speech.azure import AzureSpeechEngine
from pichat_trio.adapters.speech.azure_socket import AzureSocketRecognizer
from pichat_trio.adapters.speech.azure_stream import AzureStreamingRecognizer
from pichat_trio.adapters.speech.azure_wire import text_message
from pichat_trio.adapters.speech.local_stream import OfflineStreamingRecognizer
from pichat_trio.errors import InvalidInput, UpstreamError, UpstreamUnavailable
from pichat_trio.fakes.azure_speech import (
    FakeAzureSpeech,
    FakeConnection,
    open_fake_azure_speech,
)
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


AZURE_RECOGNIZERS = {"sdk": AzureStreamingRecognizer, "socket": AzureSocketRecognizer}
"""The SDK's push stream, and the same protocol spoken from trio (``AZURE_SPEECH_STREAMING``)."""


def _azure(kind: str, key: str, fake: FakeAzureSpeech) -> StreamingRecognizer:
    return AZURE_RECOGNIZERS[kind](AzureSpeechEngine(key=key, host=fake.host))


@pytest.mark.parametrize("kind", sorted(AZURE_RECOGNIZERS))
async def test_azure_stream_gives_partials_then_the_final(fake: FakeAzureSpeech, kind: str) -> None:
    recognizer = _azure(kind, fake.key, fake)
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


@pytest.mark.parametrize("kind", sorted(AZURE_RECOGNIZERS))
async def test_azure_stream_refused_credentials(fake: FakeAzureSpeech, kind: str) -> None:
    recognizer = _azure(kind, "wrong", fake)
    with pytest.raises(UpstreamError), trio.fail_after(30):
        await _recognise(recognizer, spoken("hello"))


@pytest.mark.parametrize("kind", sorted(AZURE_RECOGNIZERS))
async def test_two_azure_streams_at_once(fake: FakeAzureSpeech, kind: str) -> None:
    recognizer = _azure(kind, fake.key, fake)
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


def _conversation(connection: FakeConnection) -> list[tuple[str, tuple[str, ...]]]:
    """What a client said on one connection in its first turn, as the service reads it:
    each message's path and header names. (The SDK then sends its telemetry, and in
    continuous mode opens one more turn for the few bytes it holds back.)"""
    turns = [m.headers["x-requestid"] for m in connection.messages if "x-requestid" in m.headers]
    return [
        (m.path, tuple(sorted(m.headers)))
        for m in connection.messages
        if m.path != "telemetry" and m.headers.get("x-requestid", turns[0]) == turns[0]
    ]


async def test_the_socket_recognizer_speaks_as_the_sdk_does(fake: FakeAzureSpeech) -> None:
    """Message for message, header for header, byte for byte of audio: the protocol
    the SDK speaks (the reference) is the one the socket recogniser speaks."""
    pcm = silence(200) + spoken(PHRASE, VOICE)
    results = {}
    for index, kind in enumerate(("sdk", "socket")):
        _, text, _ = await _recognise(_azure(kind, fake.key, fake), pcm)
        connection = await fake.wait_connection(index)
        await connection.audio_ended.wait()
        results[kind] = (text, connection)
    (sdk_text, sdk), (socket_text, socket) = results["sdk"], results["socket"]
    assert socket_text == sdk_text == "Play some music, please."
    assert socket.path == sdk.path
    assert socket.key_sent and sdk.key_sent
    assert "x-connectionid" in socket.headers and "x-connectionid" in sdk.headers
    assert len(socket.headers["x-connectionid"]) == len(sdk.headers["x-connectionid"]) == 32
    # the SDK cuts the pushed audio into messages of its own size: compare the sequence
    # with runs of audio messages taken as one
    assert _runs(_conversation(socket)) == _runs(_conversation(sdk))
    # the WAV header and every sample (the SDK's second turn sends a header again)
    assert sdk.audio_received.startswith(socket.audio_received)
    assert len(socket.audio_received) == 44 + len(pcm)
    for kind, connection in (("sdk", sdk), ("socket", socket)):
        config = json.loads(connection.bodies("speech.config")[0])
        assert config["context"]["audio"]["source"]["samplerate"] == str(RATE), kind
        context = json.loads(connection.bodies("speech.context")[0])
        assert context["phraseDetection"]["language"] == "en-US", kind
    ids = {m.headers.get("x-requestid") for m in socket.messages if m.path != "speech.config"}
    assert len(ids) == 1 and None not in ids  # one turn, every message of it named


def _runs(messages: list[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple[str, ...]]]:
    collapsed: list[tuple[str, tuple[str, ...]]] = []
    for message in messages:
        if not collapsed or collapsed[-1] != message:
            collapsed.append(message)
    return collapsed


async def test_the_socket_recognizer_reports_an_unreachable_service() -> None:
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    engine = AzureSpeechEngine(key="k", host=f"ws://127.0.0.1:{port}")
    with pytest.raises(UpstreamUnavailable):
        await _recognise(AzureSocketRecognizer(engine), silence(100))


async def test_the_socket_recognizer_reports_a_failed_phrase() -> None:
    async def service(request: WebSocketRequest) -> None:
        ws = await request.accept()
        with contextlib.suppress(ConnectionClosed):
            await answer(ws)

    async def answer(ws: WebSocketConnection) -> None:
        while True:
            message = await ws.get_message()
            if isinstance(message, bytes) and message.endswith(b"X-StreamId: 1\r\n"):
                # the end of the audio (an empty payload): the phrase fails
                failed = {"RecognitionStatus": "Error", "Offset": 0}
                await ws.send_message(text_message("speech.phrase", failed))
                await ws.send_message(text_message("turn.end", {}))

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, service, "127.0.0.1", 0, None)
        engine = AzureSpeechEngine(key="k", host=f"ws://127.0.0.1:{server.port}")
        with pytest.raises(UpstreamError):
            await _recognise(AzureSocketRecognizer(engine), silence(100))
        nursery.cancel_scope.cancel()


async def test_the_socket_recognizer_reports_a_failed_tls_handshake(fake: FakeAzureSpeech) -> None:
    """``wss://`` to a server that speaks no TLS: the handshake breaks the stream."""
    engine = AzureSpeechEngine(key=fake.key, host=fake.host.replace("ws://", "wss://"))
    with pytest.raises(UpstreamUnavailable):
        await _recognise(AzureSocketRecognizer(engine), silence(100))
