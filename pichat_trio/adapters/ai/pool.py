"""An httpx transport that keeps HTTP/1.1 connections to the AI service, in O(1) per request.

httpx's default pool (httpcore's ``AsyncConnectionPool``) walks every
connection it holds on each request and on each response close, and its
surplus-idle check rebuilds a list of all connections inside that walk:
quadratic in the number of connections. With hundreds of concurrent
streams that walk was a fifth of the server's CPU. Here a request takes
the most recently returned idle connection to its origin (or opens one),
and closing the response puts it back: a dict lookup and a list pop.

Bound: at most ``max_connections`` connections in use at once (a request
that finds none free waits up to the ``pool`` timeout, then fails with
``httpx.PoolTimeout``); idle ones are kept for ``keepalive_expiry``
seconds and at most ``max_connections`` of them.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator

import httpcore
import httpx
import trio
from httpx._transports.default import map_httpcore_exceptions

__all__ = ["KeepAliveTransport"]

_Origin = tuple[bytes, bytes, int | None]


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
        self._max_idle = max_connections
        self._idle: dict[_Origin, list[httpcore.AsyncHTTPConnection]] = {}
        self._idle_count = 0
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        origin: _Origin = (url.raw_scheme, url.raw_host, url.port)
        pool_timeout = request.extensions.get("timeout", {}).get("pool")
        with trio.move_on_after(float("inf") if pool_timeout is None else pool_timeout) as wait:
            await self._slots.acquire()
        if wait.cancelled_caught:
            raise httpx.PoolTimeout("no connection to the AI service became free in time")
        try:
            while True:
                connection = await self._take_idle(origin) or self._connect(core_request)
                try:
                    with map_httpcore_exceptions():
                        response = await connection.handle_async_request(core_request)
                except httpcore.ConnectionNotAvailable:  # it went away while idle: a new one
                    await _close(connection)
                    continue
                except BaseException:
                    await _close(connection)
                    raise
                break
        except BaseException:
            self._slots.release()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(self, origin, connection, response.stream),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    def _connect(self, request: httpcore.Request) -> httpcore.AsyncHTTPConnection:
        return httpcore.AsyncHTTPConnection(
            origin=request.url.origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
        )

    async def _take_idle(self, origin: _Origin) -> httpcore.AsyncHTTPConnection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if connection.is_idle() and not connection.has_expired():
                return connection
            await _close(connection)
        return None

    def _give_back(self, origin: _Origin, connection: httpcore.AsyncHTTPConnection) -> bool:
        """Keep ``connection`` for the next request; False when it cannot be kept."""
        self._slots.release()
        if self._closed or not connection.is_idle() or self._idle_count >= self._max_idle:
            return False
        self._idle.setdefault(origin, []).append(connection)
        self._idle_count += 1
        return True

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        self._idle_count = 0
        for connections in idle.values():
            for connection in connections:
                await _close(connection)


class _ResponseStream(httpx.AsyncByteStream):
    """The body of one response; closing it returns the connection to the pool."""

    __slots__ = ("_connection", "_done", "_origin", "_stream", "_transport")

    def __init__(
        self,
        transport: KeepAliveTransport,
        origin: _Origin,
        connection: httpcore.AsyncHTTPConnection,
        stream: httpx.AsyncByteStream,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._stream = stream
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with map_httpcore_exceptions():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            with map_httpcore_exceptions():
                await self._stream.aclose()
        finally:
            if not self._transport._give_back(self._origin, self._connection):
                await _close(self._connection)


async def _close(connection: httpcore.AsyncHTTPConnection) -> None:
    with trio.CancelScope(shield=True), contextlib.suppress(httpcore.NetworkError, OSError):
        await connection.aclose()
