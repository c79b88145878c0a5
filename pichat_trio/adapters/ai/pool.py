"""An httpx transport that keeps HTTP/1.1 connections to the AI service, in O(1) per request.

Two costs of httpx's default transport mattered at hundreds of concurrent
streams, both on the one server core:

- its pool (httpcore's ``AsyncConnectionPool``) walks every connection it
  holds on each request and each response close: quadratic in the number of
  connections, a fifth of the CPU at 200 streams;
- reading a body goes through httpcore's and h11's event machinery, a
  context manager and a timeout scope per read: a quarter of the CPU.

Here a request takes the most recently returned idle connection to its
origin (or opens one, ``connection.py``), and closing the response puts it
back: a dict lookup and a list pop. The bytes are read straight from the
trio stream and de-framed by ``h1.BodyReader``. Failures are httpx's
exceptions, as before. ``body_chunks`` gives a streamed body without
httpx's three generator layers on top when it can.

Bound: at most ``max_connections`` connections in use at once (a request
that finds none free waits up to the ``pool`` timeout, then fails with
``httpx.PoolTimeout``); idle ones are kept for ``keepalive_expiry`` seconds
and at most ``max_connections`` of them.

``open_pool`` owns a pool: its nursery runs the task that keeps the read
timeouts (``read_deadlines.py``), and its end closes the connections.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from .connection import Addresses, Connection, Origin
from .h1 import BodyReader, ProtocolError, ResponseHead, request_head
from .read_deadlines import ReadDeadlines

__all__ = ["KeepAliveTransport", "body_chunks", "open_pool"]

_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_BODY = "pichat.body"
"""The response extension that holds our ``_ResponseStream`` (``body_chunks``)."""


@asynccontextmanager
async def open_pool(
    *,
    max_connections: int = 512,
    keepalive_expiry: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[KeepAliveTransport]:
    """A ``KeepAliveTransport`` and the nursery that runs its read timeouts; on exit
    its connections are closed and that task ends.

    An exception of the block comes out as it was raised, not in the
    nursery's exception group: the pool's task ends only by cancellation, so
    the block's error is the group's only one.
    """
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            pool = KeepAliveTransport(
                nursery,
                max_connections=max_connections,
                keepalive_expiry=keepalive_expiry,
                ssl_context=ssl_context,
            )
            try:
                yield pool
            finally:
                await pool.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) != 1:
            raise
        error = group.exceptions[0]
    if error is not None:
        raise error


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """The pool. ``nursery`` runs its read-timeout task for as long as it lives:
    ``open_pool`` gives the pool a nursery of its own."""

    def __init__(
        self,
        nursery: trio.Nursery,
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
        self._idle: dict[Origin, list[Connection]] = {}
        self._idle_count = 0
        self._closed = False
        self._addresses = Addresses()
        self._deadlines = ReadDeadlines()
        nursery.start_soon(self._deadlines.run, name="pichat.ai-read-deadlines")

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
        self, origin: Origin, message: bytes, timeouts: dict[str, float | None]
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
        self, origin: Origin, message: bytes, timeouts: dict[str, float | None]
    ) -> tuple[ResponseHead, bytes, Connection]:
        """Send ``message`` and read the response head, on a kept connection if one works.

        A kept connection the server closed while it was idle fails before
        any response byte: then the request goes once more on a new one.
        """
        while True:
            connection = self._take_idle(origin)
            reused = connection is not None
            if connection is None:
                connection = await Connection.open(
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
                    connection = await Connection.open(
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

    def _take_idle(self, origin: Origin) -> Connection | None:
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

    async def _release(self, origin: Origin, connection: Connection, reusable: bool) -> None:
        """A request is done with ``connection``: keep it for the next one if it can
        carry one and there is room, else close it. Frees the request's slot."""
        self._slots.release()
        if not (reusable and self._keep(origin, connection)):
            await connection.close()

    def _keep(self, origin: Origin, connection: Connection) -> bool:
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
        origin: Origin,
        connection: Connection,
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


def _origin(url: httpx.URL) -> Origin:
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
