"""An httpx transport that keeps HTTP/1.1 connections to the AI service, in O(1) per request.

Two costs of httpx's default transport mattered at hundreds of concurrent
streams, both on the one server core:

- its pool (httpcore's ``AsyncConnectionPool``) walks every connection it
  holds on each request and each response close: quadratic in the number of
  connections, a fifth of the CPU at 200 streams;
- reading a body goes through httpcore's and h11's event machinery, a
  context manager and a timeout scope per read: a quarter of the CPU.

Here a request takes the most recently returned idle connection to its
origin (or opens one), and closing the response puts it back: a dict lookup
and a list pop. The bytes are read straight from the trio stream and
de-framed by ``h1.BodyReader``. Failures are httpx's exceptions, as before.

On a plain TCP connection a read is one wait for readability and one
``recv`` on the socket itself: trio's socket layer would try the ``recv``
first (nearly always in vain between tokens) and pass through the
scheduler once more after it. ``body_chunks`` gives a streamed body
without httpx's three generator layers on top when it can.

Bound: at most ``max_connections`` connections in use at once (a request
that finds none free waits up to the ``pool`` timeout, then fails with
``httpx.PoolTimeout``); idle ones are kept for ``keepalive_expiry`` seconds
and at most ``max_connections`` of them.
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import trio

from .h1 import BodyReader, ProtocolError, ResponseHead, parse_response_head, request_head

__all__ = ["KeepAliveTransport", "body_chunks"]

_Origin = tuple[bytes, bytes, int]

_READ_SIZE = 64 * 1024
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_IO_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError)
_SILENT = "the AI service sent nothing in time"
"""The ``ReadTimeout`` of a read that outlived its deadline."""
_BODY = "pichat.body"
"""The response extension that holds our ``_ResponseStream`` (``body_chunks``)."""


class KeepAliveTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = 512,
        keepalive_expiry: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._keepalive_expiry = keepalive_expiry
        self._slots = trio.Semaphore(max_connections)
        self._max_connections = max_connections
        self._max_idle = max_connections
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._closed = False
        self._addresses = _Addresses()
        self._deadlines = _ReadDeadlines()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = _origin(url)
        message = request_head(request.method.encode(), url.raw_path, request.headers.raw)
        message += await request.aread()
        return await self._send(origin, message, request.extensions.get("timeout", {}))

    async def post(
        self,
        url: httpx.URL,
        headers: Mapping[str, str],
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        """POST ``body`` to ``url``, as ``handle_async_request`` would, without an
        ``httpx.Request``: building one (its headers normalised and copied twice)
        cost as much as the rest of the request's way through the pool.

        ``headers`` go out as given, after ``Host`` and before ``Content-Length``.
        """
        fields = [(b"Host", url.netloc)]
        fields += [
            (name.encode("ascii"), value.encode("latin-1")) for name, value in headers.items()
        ]
        fields.append((b"Content-Length", b"%d" % len(body)))
        message = request_head(b"POST", url.raw_path, fields) + body
        return await self._send(_origin(url), message, timeouts)

    async def _send(
        self, origin: _Origin, message: bytes, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        if self._slots.value:  # the common case, without a trip through the scheduler
            self._slots.acquire_nowait()
        else:
            with trio.move_on_after(_seconds(timeouts.get("pool"))) as wait:
                await self._slots.acquire()
            if wait.cancelled_caught:
                raise httpx.PoolTimeout("no connection to the AI service became free in time")
        try:
            head, first, connection = await self._exchange(origin, message, timeouts)
        except BaseException:
            self._slots.release()
            raise
        try:
            reader = head.body_reader()
        except ProtocolError as exc:
            await self._release(origin, connection, reusable=False)
            raise httpx.RemoteProtocolError(str(exc)) from exc
        read_timeout = _seconds(timeouts.get("read"))
        body = _ResponseStream(
            self, origin, connection, reader, first, read_timeout, head.keep_alive
        )
        return httpx.Response(
            status_code=head.status,
            headers=head.headers,
            stream=body,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason, _BODY: body},
        )

    async def _exchange(
        self, origin: _Origin, message: bytes, timeouts: dict[str, float | None]
    ) -> tuple[ResponseHead, bytes, _Connection]:
        """Send ``message`` and read the response head, on a kept connection if one works.

        A kept connection the server closed while it was idle fails before
        any response byte: then the request goes once more on a new one.
        """
        while True:
            connection = self._take_idle(origin)
            reused = connection is not None
            if connection is None:
                connection = await _Connection.open(
                    origin,
                    self._ssl_context,
                    _seconds(timeouts.get("connect")),
                    self._addresses,
                    self._deadlines,
                )
            try:
                await connection.send(message, _seconds(timeouts.get("write")))
                head, first = await connection.read_head(_seconds(timeouts.get("read")))
            except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
                await connection.close()
                if reused and not connection.received:
                    continue
                raise
            except BaseException:
                await connection.close()
                raise
            return head, first, connection

    @property
    def in_use(self) -> int:
        """Connections carrying a request now."""
        return self._max_connections - self._slots.value

    async def preconnect(self, url: httpx.URL, total: int, within: float, at_once: int = 8) -> int:
        """Open connections to ``url``'s origin, ``at_once`` at a time, until ``total``
        are open there (in use or kept idle; never more than ``max_connections``).

        The requests that come next find a connection ready: a new one costs a
        request its TCP (and TLS) handshake, and in a burst of first requests
        a trip through the scheduler each. Returns how many were opened; a
        connection that cannot be opened within ``within`` seconds ends it
        with httpx's error. Opened connections are kept like returned ones.
        """
        origin = _origin(url)
        need = min(total, self._max_connections) - self.in_use - len(self._idle.get(origin, ()))
        opened = 0
        failures: list[httpx.HTTPError] = []

        async def open_some(count: int) -> None:
            nonlocal opened
            for _ in range(count):
                if failures:
                    return
                try:
                    connection = await _Connection.open(
                        origin, self._ssl_context, within, self._addresses, self._deadlines
                    )
                except httpx.HTTPError as exc:
                    failures.append(exc)
                    return
                if not self._keep(origin, connection):
                    await connection.close()
                    return
                opened += 1

        if need > 0 and not self._closed:
            async with trio.open_nursery() as nursery:
                workers = min(at_once, need)
                for i in range(workers):
                    nursery.start_soon(open_some, need // workers + (i < need % workers))
        if failures:
            raise failures[0]
        return opened

    def _take_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        now = trio.current_time()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.expires_at > now and not connection.socket.is_readable():
                connection.received = 0
                return connection
            connection.close_now()
        return None

    async def _release(self, origin: _Origin, connection: _Connection, reusable: bool) -> None:
        """A request is done with ``connection``: keep it for the next one if it can
        carry one and there is room, else close it. Frees the request's slot."""
        self._slots.release()
        if not (reusable and self._keep(origin, connection)):
            await connection.close()

    def _keep(self, origin: _Origin, connection: _Connection) -> bool:
        """Keep ``connection`` idle for the next request to ``origin``, if the pool is
        open and has room; False if it did not."""
        if self._closed or self._idle_count >= self._max_idle:
            return False
        connection.expires_at = trio.current_time() + self._keepalive_expiry
        self._idle.setdefault(origin, []).append(connection)
        self._idle_count += 1
        return True

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        self._idle_count = 0
        for connections in idle.values():
            for connection in connections:
                await connection.close()


class _Connection:
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
        deadlines: _ReadDeadlines,
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
        origin: _Origin,
        ssl_context: ssl.SSLContext,
        within: float,
        addresses: _Addresses,
        deadlines: _ReadDeadlines,
    ) -> _Connection:
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
            except _IO_ERRORS as exc:
                if stream is not None:
                    await trio.aclose_forcefully(stream)
                raise httpx.ConnectError(_describe(exc)) from exc
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
                raise httpx.WriteError(_describe(exc)) from exc
            if sent == len(data):
                return
            data = data[sent:]
        with trio.move_on_after(within):
            try:
                await self.stream.send_all(data)
            except _IO_ERRORS as exc:
                raise httpx.WriteError(_describe(exc)) from exc
            return
        raise httpx.WriteTimeout("the request could not be sent in time")

    async def receive(self, within: float) -> bytes:
        """Some bytes; ``b""`` when the server closed its side.

        Nothing for ``within`` seconds is ``httpx.ReadTimeout``: the read's
        deadline is kept by ``_ReadDeadlines``, not by a cancel scope. A read
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
                    raise httpx.ReadError(_describe(exc)) from exc
                self.received += len(data)
                return data
        finally:
            deadlines.discard(self)

    async def _receive_from_stream(self) -> bytes:
        try:
            data = await self.stream.receive_some(_READ_SIZE)
        except _IO_ERRORS as exc:
            raise self._read_error(exc) from None
        if type(data) is not bytes:  # TLS gives a bytearray
            data = bytes(data)
        self.received += len(data)
        return data

    def _read_error(self, exc: BaseException) -> httpx.TransportError:
        if self.timed_out:
            return httpx.ReadTimeout(_SILENT)
        error = httpx.ReadError(_describe(exc))
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
        with trio.CancelScope(shield=True), contextlib.suppress(*_IO_ERRORS):
            await trio.aclose_forcefully(self.stream)

    def close_now(self) -> None:
        """Close without waiting (no TLS goodbye): for idle connections found dead or old."""
        self.socket.close()


class _ReadDeadlines:
    """The read timeout of every connection of a pool that is waiting for bytes.

    A cancel scope with a deadline around each wait cost 5-7 us a read
    (its entry in trio's deadline heap, its status object, its exit): a
    tenth of a token's CPU at 200 streams. Here a waiting read is an entry
    in a dict, and one task sleeps until the earliest deadline; a read
    still waiting then is woken by ``notify_closing`` on its socket
    (``ClosedResourceError`` in the read, which reports ``ReadTimeout``),
    and its connection is closed, as ``notify_closing`` requires.

    The task is a trio system task, started by the first read; it sleeps
    while nothing is waiting and ends with the trio run (a pool serves one
    run, as its connections do).
    """

    __slots__ = ("_idle", "_sleep", "_started", "_target", "_waiting")

    def __init__(self) -> None:
        self._waiting: dict[_Connection, float] = {}
        self._started = False
        self._idle: trio.Event | None = None  # set by add() while the task waits for work
        self._sleep: trio.CancelScope | None = None  # the task's sleep until ``_target``
        self._target = math.inf

    def add(self, connection: _Connection, deadline: float) -> None:
        self._waiting[connection] = deadline
        if not self._started:
            self._started = True
            trio.lowlevel.spawn_system_task(self._run, name="pichat.ai-read-deadlines")
        elif self._idle is not None:
            self._idle.set()
        elif deadline < self._target and self._sleep is not None:
            self._sleep.cancel()  # sooner than the task is sleeping for

    def discard(self, connection: _Connection) -> None:
        self._waiting.pop(connection, None)

    async def _run(self) -> None:
        waiting = self._waiting
        while True:
            if not waiting:
                self._idle = trio.Event()
                await self._idle.wait()
                self._idle = None
                continue
            self._target = min(waiting.values())
            with trio.CancelScope() as self._sleep:
                await trio.sleep_until(self._target)
            self._sleep = None
            now = trio.current_time()
            for connection, deadline in list(waiting.items()):
                if deadline <= now:
                    del waiting[connection]
                    connection.timed_out = True
                    trio.lowlevel.notify_closing(connection.socket)


class _ResponseStream(httpx.AsyncByteStream):
    """The body of one response; closing it returns the connection to the pool."""

    __slots__ = (
        "_closed",
        "_connection",
        "_first",
        "_keep_alive",
        "_origin",
        "_reader",
        "_timeout",
        "_transport",
    )

    def __init__(
        self,
        transport: KeepAliveTransport,
        origin: _Origin,
        connection: _Connection,
        reader: BodyReader,
        first: bytes,
        timeout: float,
        keep_alive: bool,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._reader = reader
        self._first = first
        self._keep_alive = keep_alive  # the server did not say "Connection: close"
        self._timeout = timeout
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        reader = self._reader
        data, self._first = self._first, b""
        try:
            while True:
                if data:
                    for piece in reader.feed(data):
                        yield piece
                if reader.done:
                    return
                if self._closed:
                    raise httpx.StreamClosed()
                data = await self._connection.receive(self._timeout)
                if not data:
                    reader.eof()
                    return
        except ProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        reader = self._reader
        reusable = self._keep_alive and reader.done and not reader.extra and not reader.until_close
        await self._transport._release(self._origin, self._connection, reusable)


class _Addresses:
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
    hostname: str, port: int, names: _Addresses
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


def _origin(url: httpx.URL) -> _Origin:
    if url.raw_scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
    return (url.raw_scheme, url.raw_host, url.port or _DEFAULT_PORTS[url.raw_scheme])


def body_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive: straight from our stream when the response
    came through ``KeepAliveTransport`` unencoded, else through httpx's ``aiter_bytes``.

    Either way ``response.aclose()`` ends it and returns the connection.
    """
    body = response.extensions.get(_BODY)
    if isinstance(body, _ResponseStream) and "content-encoding" not in response.headers:
        return body.__aiter__()
    return response.aiter_bytes()


def _seconds(timeout: Any) -> float:
    """An httpx timeout value as a trio one: None means no limit."""
    return math.inf if timeout is None else float(timeout)


def _describe(exc: BaseException) -> str:
    """The error for a message: trio's ``BrokenResourceError`` hides the OS or TLS error."""
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
    return f"{type(cause).__name__}: {cause}"
