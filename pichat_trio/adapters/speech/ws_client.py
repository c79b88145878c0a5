"""A client WebSocket driven by the one task that uses it, with wsproto over a trio stream.

For request and response exchanges (speak this sentence, receive its audio)
a connection needs no reader task of its own: the caller sends its messages
and then reads until its answer is complete, answering pings and a close on
the way. Between two exchanges nothing reads the socket; whatever the server
sent meanwhile (a ping, a close) is handled by the next read. So a
connection can be kept for a whole voice session without a nursery, and
closing it is closing the stream.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

__all__ = ["Address", "Closed", "Rejected", "WebSocketClient", "connect", "open_stream"]

_RECEIVE_BYTES = 64 * 1024


class Rejected(Exception):
    """The server answered the handshake with an HTTP status, not a WebSocket."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the handshake was refused with HTTP {status}")
        self.status = status


class Closed(Exception):
    """The connection is gone (the server closed it, or the stream broke)."""


@dataclass(frozen=True)
class Address:
    """Where a ``ws://`` or ``wss://`` URL points, as a connection needs it."""

    host: str
    port: int
    target: str  # the path and query, for the handshake's request line
    authority: str  # the handshake's Host header
    secure: bool

    @classmethod
    def of(cls, url: str) -> Address:
        parts = urlsplit(url)
        secure = parts.scheme == "wss"
        host = parts.hostname or ""
        port = parts.port or (443 if secure else 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        authority = host if parts.port is None else f"{host}:{port}"
        return cls(host, port, target, authority, secure)


async def open_stream(address: Address) -> trio.abc.Stream:
    """A TCP connection to ``address``, with TLS when it is secure, the TLS handshake
    done here (so its failure is raised here, as ``BrokenResourceError``, and the
    connection closed again). Raises ``OSError`` when nothing answers."""
    tcp = await trio.open_tcp_stream(address.host, address.port)
    if not address.secure:
        return tcp
    context = ssl.create_default_context()
    tls = trio.SSLStream(tcp, context, server_hostname=address.host, https_compatible=True)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return tls


async def connect(
    url: str, headers: list[tuple[bytes, bytes]], *, max_message_bytes: int
) -> WebSocketClient:
    """Open a connection to ``url`` (``ws://`` or ``wss://``); raises ``OSError``,
    ``Rejected`` or ``Closed``. The caller bounds the time it may take."""
    address = Address.of(url)
    try:
        stream = await open_stream(address)
    except trio.BrokenResourceError as error:
        raise Closed(f"the TLS handshake failed: {error}") from None
    client = WebSocketClient(stream, max_message_bytes)
    try:
        await client._handshake(address.authority, address.target, headers)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return client


class WebSocketClient:
    def __init__(self, stream: trio.abc.Stream, max_message_bytes: int) -> None:
        self._stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._max = max_message_bytes
        self._messages: deque[str | bytes] = deque()
        self._text: list[str] = []  # a text message's parts so far
        self._bytes = bytearray()  # a binary message's
        self._size = 0  # characters of ``_text``
        self._closed = False  # by us
        self._gone: str | None = None  # why the server's side ended, once it has

    async def _handshake(
        self, authority: str, target: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        request = Request(host=authority, target=target, extra_headers=headers)
        await self._send_bytes(self._ws.send(request))
        while True:
            for event in await self._events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    raise Rejected(event.status_code)

    async def send(self, message: str | bytes) -> None:
        if self._closed or self._gone is not None or self._ws.state is not ConnectionState.OPEN:
            raise Closed("the connection is closed")
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(message)
        await self._send_bytes(self._ws.send(event))

    async def receive(self) -> str | bytes:
        """The next whole message; the messages that came before a close come first."""
        while not self._messages:
            if self._gone is not None:
                raise Closed(self._gone)
            for event in await self._events():
                await self._handle(event)
        return self._messages.popleft()

    async def aclose(self) -> None:
        """Close at once: the stream goes, with a close frame sent if it can be."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._ws.state is ConnectionState.OPEN:
                with trio.move_on_after(0.5):
                    await self._stream.send_all(self._ws.send(CloseConnection(code=1000)))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(self._stream)

    async def _handle(self, event: object) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            if isinstance(event, TextMessage):
                self._text.append(event.data)
                self._size += len(event.data)
            else:
                self._bytes += event.data
            if self._size + len(self._bytes) > self._max:
                await self.aclose()
                raise Closed(f"a message over {self._max} bytes")
            if event.message_finished:
                text = isinstance(event, TextMessage)
                self._messages.append("".join(self._text) if text else bytes(self._bytes))
                self._text, self._bytes, self._size = [], bytearray(), 0
        elif isinstance(event, Ping):
            await self._send_bytes(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection) and self._gone is None:
            self._gone = f"the server closed the connection ({event.code} {event.reason})"
            if self._ws.state is not ConnectionState.CLOSED:
                with contextlib.suppress(Closed):
                    await self._send_bytes(self._ws.send(event.response()))
            await self.aclose()

    async def _events(self) -> list[object]:
        if self._closed:
            self._gone = self._gone or "the connection is closed"
            return []
        try:
            data = await self._stream.receive_some(_RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise Closed(f"the connection broke: {error}") from None
        if not data:
            await self.aclose()
            self._gone = self._gone or "the server closed the connection"
            return []
        self._ws.receive_data(bytes(data))
        return list(self._ws.events())

    async def _send_bytes(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            raise Closed(f"the connection broke: {error}") from None
