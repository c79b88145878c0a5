"""Streaming recognition with Azure Speech over its WebSocket, from trio itself.

The SDK's push stream (``azure_stream.py``) works, but every recogniser
brings three native threads that wake whether or not audio comes, and every
partial result crosses from one of them into Python: a hundred live sessions
on one core spend more than half of it in the SDK and wait on the GIL
(``bench/voice_sessions.py``). This recogniser speaks the same protocol as
the SDK in continuous mode, message for message (a test holds the two to the
same sequence against the fake service), on a socket of the event loop:

- the handshake to ``/speech/recognition/conversation/cognitiveservices/v1``
  with the key and a connection id; ``speech.config`` (the client and the
  audio format), then for the utterance's turn ``speech.context`` and binary
  ``audio`` messages: the WAV header first, the PCM as it comes, an empty
  payload at the end;
- the service answers ``speech.hypothesis`` (partials), ``speech.phrase``
  (each phrase's final text) and ``turn.end`` once the audio is done.

One socket per utterance, as the SDK recogniser per utterance had: the
stream's block owns it, and leaving the block closes it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)

from ...errors import PichatError, UpstreamError, UpstreamUnavailable
from .azure import AzureRecognizerBase, AzureSpeechEngine
from .azure_wire import (
    audio_message,
    client_context,
    handshake_error,
    new_id,
    parse_message,
    text_message,
    unreachable_error,
    wav_stream_header,
)
from .ws_client import Address, open_stream

__all__ = ["AzureSocketRecognizer"]

log = logging.getLogger(__name__)

_PATH = "/speech/recognition/conversation/cognitiveservices/v1"
_CONNECT_SECONDS = 10.0  # the TCP (and TLS) connection, then the handshake
_CLOSE_SECONDS = 2.0  # the closing handshake, when the utterance's block is left
_MAX_MESSAGE_BYTES = 1024 * 1024
_NOTHING_HEARD = {"NoMatch", "InitialSilenceTimeout", "BabbleTimeout", "EndOfDictation"}


class AzureSocketRecognizer(AzureRecognizerBase):
    """Live recognition over the same service (key, region or host) as ``engine``."""

    @asynccontextmanager
    async def open_stream(
        self, language: str, sample_rate: int, on_partial: Callable[[str], None]
    ) -> AsyncIterator[_SocketStream]:
        engine = self._engine
        address = Address.of(engine.websocket_url("stt", _PATH, language=language))
        try:
            with trio.fail_after(_CONNECT_SECONDS):
                # the TLS handshake here, not in trio-websocket's reader, where a
                # failed one would leave the opening handshake waiting for its timeout
                tcp = await open_stream(address)
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as error:
            raise _unreachable(engine, error) from None
        # trio-websocket leaves its own stream open when the handshake is refused:
        # this one is ours, closed here however the block ends.
        async with tcp:
            try:
                async with trio.open_nursery() as nursery:
                    with trio.fail_after(_CONNECT_SECONDS):
                        ws = await wrap_client_stream(
                            nursery,
                            tcp,  # type: ignore[arg-type]  # any trio stream serves
                            address.authority,
                            address.target,
                            extra_headers=engine.websocket_headers(new_id()),
                            max_message_size=_MAX_MESSAGE_BYTES,
                        )
                    stream = _SocketStream(ws, new_id(), on_partial)
                    await stream.begin(language, sample_rate)
                    nursery.start_soon(stream.receive)
                    try:
                        yield stream
                    finally:
                        with trio.move_on_after(_CLOSE_SECONDS, shield=True):
                            await ws.aclose()
                        nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                raise _translated(engine, _single(group)) from None


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a nursery wrapped (the handshake's, or the block's own)."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


# What a socket that could not be opened, or broke in its handshake, raises
# (a TLS handshake that failed breaks the stream: ``BrokenResourceError``).
_UNREACHABLE = (
    HandshakeError,
    OSError,
    trio.TooSlowError,
    ConnectionClosed,
    trio.BrokenResourceError,
)


def _translated(engine: AzureSpeechEngine, error: BaseException) -> BaseException:
    if isinstance(error, ConnectionRejected):
        return handshake_error(error.status_code)
    if isinstance(error, _UNREACHABLE):
        return _unreachable(engine, error)
    return error


def _unreachable(engine: AzureSpeechEngine, error: BaseException) -> PichatError:
    return unreachable_error(engine.redact(repr(error)))


class _SocketStream:
    """One utterance's turn on its socket; ``receive`` runs beside the feeding task."""

    def __init__(
        self, ws: WebSocketConnection, request_id: str, on_partial: Callable[[str], None]
    ) -> None:
        self._ws = ws
        self._request_id = request_id
        self._on_partial = on_partial
        self._phrases: list[str] = []
        self._failure: PichatError | None = None
        self._done = trio.Event()
        self._closed = False

    async def begin(self, language: str, sample_rate: int) -> None:
        source = {
            "type": "Stream",
            "samplerate": str(sample_rate),
            "bitspersample": "16",
            "channelcount": "1",
        }
        rid = self._request_id
        turn = {"phraseDetection": {"language": language}, "audio": {"streams": {"1": None}}}
        await self._send(text_message("speech.config", client_context(audio={"source": source})))
        await self._send(text_message("speech.context", turn, rid, content_type=None))
        await self._send(audio_message(rid, wav_stream_header(sample_rate), first=True))

    async def feed(self, pcm: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        if pcm and not self._closed:
            await self._send(audio_message(self._request_id, pcm))

    async def finish(self) -> str:
        if not self._closed and self._failure is None:
            self._closed = True
            await self._send(audio_message(self._request_id, b""))  # the end of the audio
        await self._done.wait()
        if self._failure is not None:
            raise self._failure
        return " ".join(self._phrases)

    async def _send(self, message: str | bytes) -> None:
        try:
            await self._ws.send_message(message)
        except ConnectionClosed:
            self._fail(UpstreamUnavailable("Azure Speech closed the connection"))
            raise UpstreamUnavailable("Azure Speech closed the connection") from None

    async def receive(self) -> None:
        """The service's messages for this turn, until ``turn.end`` or a failure."""
        while not self._done.is_set():
            try:
                message = parse_message(await self._ws.get_message())
            except ConnectionClosed:
                self._fail(UpstreamUnavailable("Azure Speech closed the connection"))
                return
            except ValueError as error:
                log.warning("Azure Speech sent a message this client cannot read: %s", error)
                continue
            if message.request_id and message.request_id != self._request_id:
                continue  # another turn's (there is none on this socket)
            self._handle(message.path, message.body)

    def _handle(self, path: str, body: dict[str, object]) -> None:
        if path in ("speech.hypothesis", "speech.fragment"):
            text = body.get("Text")
            if isinstance(text, str) and text:
                self._on_partial(" ".join([*self._phrases, text]).strip())
        elif path == "speech.phrase":
            status = body.get("RecognitionStatus")
            text = body.get("DisplayText")
            if status == "Success":
                if isinstance(text, str) and text:
                    self._phrases.append(text)
            elif status not in _NOTHING_HEARD:
                log.warning("Azure Speech ended a phrase with status %s", status)
                self._fail(UpstreamError("Azure Speech failed"))
        elif path == "turn.end":
            self._done.set()

    def _fail(self, error: PichatError) -> None:
        if self._failure is None and not self._done.is_set():
            self._failure = error
        self._done.set()
