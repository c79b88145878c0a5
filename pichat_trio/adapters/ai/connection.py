"""One HTTP/1.1 connection to the AI service, and how it is opened.

On a plain TCP connection a read is one wait for readability and one
``recv`` on the socket itself: trio's socket layer would try the ``recv``
first (nearly always in vain between tokens) and pass through the
scheduler once more after it. A read's timeout is kept by the pool's
``ReadDeadlines`` (``read_deadlines.py``), not by a cancel scope.

Failures are httpx's exceptions, as httpx's own transport raises them.
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
from typing import Any

import httpx
import trio

from .h1 import ProtocolError, ResponseHead, parse_response_head
from .read_deadlines import ReadDeadlines

__all__ = ["IO_ERRORS", "Addresses", "Connection", "Origin", "describe"]

Origin = tuple[bytes, bytes, int]
"""Scheme, host and port: the connections kept for one are interchangeable."""

IO_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError)
_READ_SIZE = 64 * 1024
_SILENT = "the AI service sent nothing in time"
"""The ``ReadTimeout`` of a read that outlived its deadline."""


class Connection:
    """One HTTP/1.1 connection: a trio stream, maybe TLS, and the bytes read past a head."""

    __slots__ = (
        "deadlines",
        "expires_at",
        "raw",
        "received",
        "socket",
        "stream",
        "timed_out",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        socket: trio.socket.SocketType,
        raw: socket.socket | None,
        deadlines: ReadDeadlines,
    ) -> None:
        self.stream = stream
        self.socket = socket
        self.raw = raw
        """The socket itself, read directly when the stream is plain TCP."""
        self.deadlines = deadlines
        self.timed_out = False
        """A read outlived its deadline; the connection is done."""
        self.expires_at = math.inf
        self.received = 0
        """Bytes received for the current request."""

    @classmethod
    async def open(
        cls,
        origin: Origin,
        ssl_context: ssl.SSLContext,
        within: float,
        addresses: Addresses,
        deadlines: ReadDeadlines,
    ) -> Connection:
        scheme, host, port = origin
        hostname = host.decode("ascii")
        stream: trio.abc.Stream | None = None
        with trio.move_on_after(within):
            try:
                tcp, raw = await _open_tcp(hostname, port, addresses)
                stream = tcp
                if scheme == b"https":
                    stream = trio.SSLStream(
                        tcp, ssl_context, server_hostname=hostname, https_compatible=True
                    )
                    await stream.do_handshake()
                    raw = None
                return cls(stream, tcp.socket, raw, deadlines)
            except IO_ERRORS as exc:
                if stream is not None:
                    await trio.aclose_forcefully(stream)
                raise httpx.ConnectError(describe(exc)) from exc
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise httpx.ConnectTimeout(f"no connection to {hostname}:{port} within {within} s")

    async def send(self, data: bytes, within: float) -> None:
        raw = self.raw
        if raw is not None:  # a request fits the socket's buffer: no trip through the scheduler
            try:
                sent = raw.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise httpx.WriteError(describe(exc)) from exc
            if sent == len(data):
                return
            data = data[sent:]
        with trio.move_on_after(within):
            try:
                await self.stream.send_all(data)
            except IO_ERRORS as exc:
                raise httpx.WriteError(describe(exc)) from exc
            return
        raise httpx.WriteTimeout("the request could not be sent in time")

    async def receive(self, within: float) -> bytes:
        """Some bytes; ``b""`` when the server closed its side.

        Nothing for ``within`` seconds is ``httpx.ReadTimeout``: the read's
        deadline is kept by ``ReadDeadlines``, not by a cancel scope. A read
        woken with bytes at the moment of its deadline returns them; the next
        one fails, since the socket was notified closing.
        """
        if self.timed_out:
            raise httpx.ReadTimeout(_SILENT)
        deadlines = self.deadlines
        deadlines.add(self, trio.current_time() + within)
        try:
            raw = self.raw
            if raw is None:
                return await self._receive_from_stream()
            while True:
                try:
                    await trio.lowlevel.wait_readable(raw)
                except trio.ClosedResourceError as exc:
                    raise self._read_error(exc) from None
                try:
                    data = raw.recv(_READ_SIZE)
                except BlockingIOError:
                    continue  # woken, yet nothing to read after all
                except OSError as exc:
                    raise httpx.ReadError(describe(exc)) from exc
                self.received += len(data)
                return data
        finally:
            deadlines.discard(self)

    async def _receive_from_stream(self) -> bytes:
        try:
            data = await self.stream.receive_some(_READ_SIZE)
        except IO_ERRORS as exc:
            raise self._read_error(exc) from None
        if type(data) is not bytes:  # TLS gives a bytearray
            data = bytes(data)
        self.received += len(data)
        return data

    def _read_error(self, exc: BaseException) -> httpx.TransportError:
        if self.timed_out:
            return httpx.ReadTimeout(_SILENT)
        error = httpx.ReadError(describe(exc))
        error.__cause__ = exc
        return error

    async def read_head(self, within: float) -> tuple[ResponseHead, bytes]:
        """The response head, and the body bytes that came with it."""
        data = b""
        while True:
            more = await self.receive(within)
            if not more:
                raise httpx.RemoteProtocolError("the server closed the connection, no response")
            data += more
            try:
                parsed = parse_response_head(data)
            except ProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc)) from exc
            if parsed is not None:
                return parsed

    async def close(self) -> None:
        with trio.CancelScope(shield=True), contextlib.suppress(*IO_ERRORS):
            await trio.aclose_forcefully(self.stream)

    def close_now(self) -> None:
        """Close without waiting (no TLS goodbye): for idle connections found dead or old."""
        self.socket.close()


class Addresses:
    """Name lookups kept for ``ttl`` seconds, one lookup at a time per name.

    A name is looked up in a worker thread (``getaddrinfo`` blocks): without
    this, 200 streams opening together made 200 thread hops for the same
    answer, queued behind each other and the database's threads.
    """

    def __init__(self, ttl: float = 60.0) -> None:
        self._ttl = ttl
        self._known: dict[tuple[str, int], tuple[float, list[Any]]] = {}
        self._asking: dict[tuple[str, int], trio.Event] = {}

    async def lookup(self, hostname: str, port: int) -> list[Any]:
        key = (hostname, port)
        while True:
            known = self._known.get(key)
            if known is not None and known[0] > trio.current_time():
                return known[1]
            asking = self._asking.get(key)
            if asking is None:
                break
            await asking.wait()  # then the answer is known, or that lookup failed
        self._asking[key] = asking = trio.Event()
        try:
            found = await trio.socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
            self._known[key] = (trio.current_time() + self._ttl, found)
            return found
        finally:
            del self._asking[key]
            asking.set()


async def _open_tcp(
    hostname: str, port: int, names: Addresses
) -> tuple[trio.SocketStream, socket.socket | None]:
    """A TCP connection, and its socket when we made it ourselves.

    trio's happy eyeballs only when the name has several addresses:
    ``trio.open_tcp_stream`` runs a nursery and a task per attempt even for a
    single address, several trips through the scheduler per connection,
    which a burst of new streams pays in time to first token.
    """
    addresses = await names.lookup(hostname, port)
    if len(addresses) != 1:
        return await trio.open_tcp_stream(hostname, port), None
    family, kind, protocol, _, address = addresses[0]
    raw = socket.socket(family, kind, protocol)
    sock = trio.socket.from_stdlib_socket(raw)  # the same socket, made non-blocking
    try:
        await sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock), raw


def describe(exc: BaseException) -> str:
    """The error for a message: trio's ``BrokenResourceError`` hides the OS or TLS error."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
    return f"{type(cause).__name__}: {cause}"
