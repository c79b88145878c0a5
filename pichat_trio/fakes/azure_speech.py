"""A fake Azure Speech service that the real Speech SDK can talk to.

It serves the SDK's WebSocket protocol on 127.0.0.1 over plain ``ws://``
(point the SDK at it with ``SpeechConfig(subscription=..., host=fake.host)``):

- text messages are header lines (``Path``, ``X-RequestId``,
  ``Content-Type``, ``X-Timestamp``), an empty line, then the body;
- binary messages are a 2-byte big-endian header length, the header lines,
  then the payload.

Synthesis (``/cognitiveservices/websocket/v1``): the SDK sends
``speech.config``, ``synthesis.context`` and ``ssml``; the fake answers
``turn.start``, the configured audio in several binary ``audio`` messages
(optionally spaced out, so a test can hang up mid-synthesis), ``turn.end``.

Recognition (``/speech/recognition/...``): the SDK sends ``speech.config``,
``speech.context`` and binary ``audio`` messages (a RIFF header first, an
empty payload at the end of the stream); at the end of each turn's audio the
fake answers as the service does in continuous mode: ``turn.start`` and
``speech.startDetected`` with the first audio, a ``speech.hypothesis``
every ``stt_partial_ms`` of audio received (one more word of ``stt_text``
each time: the SDK's ``recognizing`` events), and at the end of the turn's
audio ``speech.phrase``, ``speech.endDetected``, ``turn.end``. The phrase
covers all the audio of the turn, so the SDK in continuous mode does not
send it again.

Every connection is recorded: its path, whether a key was sent (never its
value), every message received, how many audio messages were sent back and
the trio time at which the SDK closed it, with an event to wait for that.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from array import array
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trio
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

__all__ = [
    "FakeAzureSpeech",
    "FakeConnection",
    "ReceivedMessage",
    "open_fake_azure_speech",
    "sine_pcm",
]

_KEY_HEADER = "ocp-apim-subscription-key"
_TICKS_PER_SECOND = 10_000_000  # the service counts offsets in 100 ns ticks
_MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the SDK's audio messages are a few KB
# Less audio than this in a turn is no speech: after the last phrase the SDK in
# continuous mode opens one more turn with a few bytes left over (18 seen).
_MIN_SPEECH_SECONDS = 0.05


def sine_pcm(seconds: float = 0.5, hertz: float = 440.0, rate: int = 24000) -> bytes:
    """Mono 16-bit little-endian PCM of a quiet sine: recognisable test audio."""
    samples = array(
        "h",
        (int(8000 * math.sin(2 * math.pi * hertz * n / rate)) for n in range(int(seconds * rate))),
    )
    return samples.tobytes()


@dataclass
class ReceivedMessage:
    path: str
    headers: dict[str, str]
    text: str | None = None  # the body of a text message
    payload: bytes | None = None  # the payload of a binary message


@dataclass
class FakeConnection:
    path: str  # with the query string, e.g. "...?language=pl-PL"
    key_sent: bool
    headers: dict[str, str]  # the handshake headers, without the key
    opened_at: float
    messages: list[ReceivedMessage] = field(default_factory=list)
    audio_messages_sent: int = 0
    closed_at: float | None = None
    closed: trio.Event = field(default_factory=trio.Event)
    audio_ended: trio.Event = field(default_factory=trio.Event)  # an empty audio message came

    def bodies(self, path: str) -> list[str]:
        """The bodies of the text messages with this ``Path``."""
        return [m.text for m in self.messages if m.path == path and m.text is not None]

    @property
    def audio_received(self) -> bytes:
        """Every ``audio`` payload, RIFF headers included, in order."""
        return b"".join(m.payload or b"" for m in self.messages if m.path == "audio")

    async def wait_closed(self) -> None:
        await self.closed.wait()


@dataclass
class _Turn:
    """The audio of one recognition turn, as the SDK streams it."""

    sample_rate: int = 16000
    channels: int = 1
    pcm_bytes: int = 0
    started: bool = False  # turn.start and speech.startDetected went out
    hypotheses: int = 0

    def add(self, payload: bytes) -> None:
        if payload[:4] == b"RIFF":
            self.channels, self.sample_rate = struct.unpack_from("<HI", payload, 22)
            data = payload.find(b"data")
            payload = payload[data + 8 :] if data >= 0 else b""
        self.pcm_bytes += len(payload)

    @property
    def seconds(self) -> float:
        return self.pcm_bytes / (2 * self.channels * self.sample_rate)

    @property
    def ticks(self) -> int:
        return int(self.seconds * _TICKS_PER_SECOND)


class FakeAzureSpeech:
    """The fake's knobs and records; serve it with ``open_fake_azure_speech``.

    Knobs (plain attributes, may change between calls): ``key`` the SDK must
    send (else the handshake gets ``reject_status`` or 401); ``tts_audio``
    the bytes to synthesise (raw 24 kHz mono PCM for WAV requests, since the
    SDK asks for raw audio and adds the RIFF header itself);
    ``tts_chunk_bytes`` and ``tts_chunk_delay`` how it is sent; ``stt_text``
    the phrase to recognise, ``None`` for no match; ``stt_delay`` how long
    the fake "thinks" after the end of the audio before it answers;
    ``stt_partial_ms`` how much audio each hypothesis waits for.
    """

    def __init__(
        self,
        *,
        key: str = "fake-speech-key",
        tts_audio: bytes | None = None,
        tts_chunk_bytes: int = 4800,
        tts_chunk_delay: float = 0.0,
        stt_text: str | None = "Hello from the fake.",
        stt_delay: float = 0.0,
        stt_partial_ms: float = 300.0,
        reject_status: int | None = None,
    ) -> None:
        self.key = key
        self.tts_audio = sine_pcm() if tts_audio is None else tts_audio
        self.tts_chunk_bytes = tts_chunk_bytes
        self.tts_chunk_delay = tts_chunk_delay
        self.stt_text = stt_text
        self.stt_delay = stt_delay
        self.stt_partial_ms = stt_partial_ms
        self.reject_status = reject_status
        self.connections: list[FakeConnection] = []
        self.port = 0
        self._connected = trio.Event()

    @property
    def host(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def ssml(self) -> list[str]:
        """Every SSML document received, over all connections."""
        return [body for c in self.connections for body in c.bodies("ssml")]

    async def wait_connection(self, index: int = 0) -> FakeConnection:
        """The ``index``-th connection, once the SDK has opened it."""
        while len(self.connections) <= index:
            await self._connected.wait()
        return self.connections[index]

    async def handle(self, request: WebSocketRequest) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in request.headers}
        key = headers.pop(_KEY_HEADER, None)
        connection = FakeConnection(
            path=request.path,
            key_sent=key is not None,
            headers=headers,
            opened_at=trio.current_time(),
        )
        self.connections.append(connection)
        self._connected.set()
        self._connected = trio.Event()
        try:
            if self.reject_status is not None or key != self.key:
                await request.reject(self.reject_status or 401, body=b"Access denied")
                return
            ws = await request.accept()
            await self._serve(ws, connection)
        finally:
            connection.closed_at = trio.current_time()
            connection.closed.set()

    async def _serve(self, ws: WebSocketConnection, connection: FakeConnection) -> None:
        turns: dict[str, _Turn] = {}
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    message = _parse(await ws.get_message())
                except ConnectionClosed:
                    break
                connection.messages.append(message)
                request_id = message.headers.get("x-requestid", "")
                if message.path == "ssml":
                    nursery.start_soon(self._speak, ws, connection, request_id)
                elif message.path == "audio":
                    turn = turns.setdefault(request_id, _Turn())
                    if message.payload:
                        turn.add(message.payload)
                        await self._hear(ws, request_id, turn)
                    else:  # an empty payload ends the turn's audio
                        connection.audio_ended.set()
                        turn = turns.pop(request_id)
                        nursery.start_soon(self._recognise, ws, request_id, turn)
            nursery.cancel_scope.cancel()

    async def _speak(self, ws: WebSocketConnection, connection: FakeConnection, rid: str) -> None:
        try:
            await ws.send_message(_text("turn.start", rid, {"context": {"serviceTag": "fake"}}))
            audio, size = self.tts_audio, self.tts_chunk_bytes
            for start in range(0, len(audio), size):
                if start and self.tts_chunk_delay:
                    await trio.sleep(self.tts_chunk_delay)
                await ws.send_message(_binary("audio", rid, audio[start : start + size]))
                connection.audio_messages_sent += 1
            await ws.send_message(_text("turn.end", rid, {}))
        except ConnectionClosed:
            pass

    async def _hear(self, ws: WebSocketConnection, rid: str, turn: _Turn) -> None:
        """What the service says while audio comes in: the turn's start, hypotheses."""
        if turn.seconds < _MIN_SPEECH_SECONDS or self.stt_text is None:
            return
        words = self.stt_text.split()
        try:
            if not turn.started:
                turn.started = True
                await ws.send_message(_text("turn.start", rid, {"context": {"serviceTag": "fake"}}))
                await ws.send_message(_text("speech.startDetected", rid, {"Offset": 0}))
            due = int(1000 * turn.seconds // self.stt_partial_ms) if self.stt_partial_ms else 0
            while turn.hypotheses < min(due, len(words)):
                turn.hypotheses += 1
                text = " ".join(words[: turn.hypotheses]).lower()
                hypothesis = {"Text": text, "Offset": 0, "Duration": turn.ticks}
                await ws.send_message(_text("speech.hypothesis", rid, hypothesis))
        except ConnectionClosed:
            pass

    async def _recognise(self, ws: WebSocketConnection, rid: str, turn: _Turn) -> None:
        try:
            if turn.pcm_bytes and self.stt_delay:
                await trio.sleep(self.stt_delay)
            if not turn.started:
                context: dict[str, object] = {"context": {"serviceTag": "fake"}}
                await ws.send_message(_text("turn.start", rid, context))
            if turn.seconds < _MIN_SPEECH_SECONDS:
                phrase: dict[str, object] = {"RecognitionStatus": "EndOfDictation"}
                await ws.send_message(_text("speech.phrase", rid, phrase | {"Offset": 0}))
            elif self.stt_text is None:
                phrase = {"RecognitionStatus": "NoMatch", "Offset": 0, "Duration": turn.ticks}
                await ws.send_message(_text("speech.phrase", rid, phrase))
            else:
                span = {"Offset": 0, "Duration": turn.ticks}
                words = self.stt_text.split()
                if not turn.started:
                    await ws.send_message(_text("speech.startDetected", rid, {"Offset": 0}))
                if not turn.hypotheses:
                    hypothesis = {"Text": " ".join(words[:1]).lower(), **span}
                    await ws.send_message(_text("speech.hypothesis", rid, hypothesis))
                phrase = {"RecognitionStatus": "Success", "DisplayText": self.stt_text, **span}
                await ws.send_message(_text("speech.phrase", rid, phrase))
                await ws.send_message(_text("speech.endDetected", rid, {"Offset": turn.ticks}))
            await ws.send_message(_text("turn.end", rid, {}))
        except ConnectionClosed:
            pass


@asynccontextmanager
async def open_fake_azure_speech(
    fake: FakeAzureSpeech | None = None,
) -> AsyncIterator[FakeAzureSpeech]:
    """Serve ``fake`` (a default one if omitted) on 127.0.0.1 until the block ends."""
    fake = fake or FakeAzureSpeech()
    async with trio.open_nursery() as nursery:
        serve = functools.partial(
            serve_websocket,
            fake.handle,
            "127.0.0.1",
            0,
            None,
            max_message_size=_MAX_MESSAGE_BYTES,
            disconnect_timeout=1,
        )
        server = await nursery.start(serve)
        fake.port = server.port
        yield fake
        nursery.cancel_scope.cancel()


def _headers(path: str, request_id: str) -> str:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"X-RequestId:{request_id}\r\nPath:{path}\r\nX-Timestamp:{stamp}\r\n"


def _text(path: str, request_id: str, body: dict[str, object]) -> str:
    content_type = "Content-Type:application/json; charset=utf-8\r\n"
    return f"{_headers(path, request_id)}{content_type}\r\n{json.dumps(body)}"


def _binary(path: str, request_id: str, payload: bytes) -> bytes:
    head = f"{_headers(path, request_id)}X-StreamId:1\r\n".encode()
    return len(head).to_bytes(2, "big") + head + payload


def _parse(message: str | bytes) -> ReceivedMessage:
    if isinstance(message, str):
        head, _, text = message.partition("\r\n\r\n")
        headers = _parse_headers(head)
        return ReceivedMessage(path=headers.get("path", ""), headers=headers, text=text)
    length = int.from_bytes(message[:2], "big")
    headers = _parse_headers(message[2 : 2 + length].decode())
    payload = message[2 + length :]
    return ReceivedMessage(path=headers.get("path", ""), headers=headers, payload=payload)


def _parse_headers(head: str) -> dict[str, str]:
    headers = {}
    for line in head.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
