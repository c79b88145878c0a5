"""The request, stream and retry loop shared by the HTTP chat providers.

A provider subclasses ``HttpChatModel`` and supplies one thing: the URL,
headers and body of a request (``_build_call``). Everything else is here, in
one place: sending the request, decoding the event stream, retrying before
the first token, mapping failures to domain errors.

Who owns the ``httpx.AsyncClient``: the caller when it passes one in (tests,
the ``open_chat_model`` factory); otherwise the model creates a plain
``httpx.AsyncClient`` and closes it in ``aclose``. Either way one client,
with its connection pool and keep-alive, serves every stream of the model.
A ``PooledClient`` (what ``open_http_client`` opens: its pool needs a
nursery, so only an async context manager can own it) is used through its
pool directly; any other httpx client through its ordinary ``stream`` call.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import trio

from ... import __version__
from ...errors import UpstreamUnavailable
from ...log_context import bind_upstream_request
from ...ports import ChatDelta, ChatRequest
from .failures import DROPPED, Failure, failure_for_exception, failure_for_status
from .pool import KeepAliveTransport, body_chunks, open_pool
from .retry import RetryPolicy, parse_retry_after
from .sse import ChatStreamDecoder

__all__ = [
    "DEFAULT_TIMEOUT",
    "STREAM_HEADERS",
    "HttpCall",
    "HttpChatModel",
    "PooledClient",
    "open_http_client",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=10.0)
"""Seconds. ``read`` is the longest silence tolerated between two reads of a
stream (waiting for the first token included): a stalled upstream fails the
stream with ``UpstreamUnavailable`` instead of hanging it."""

_MAX_ERROR_BODY = 64 * 1024
"""Bytes of an error response read for its code; the rest is not read."""

_DRAIN_SECONDS = 1.0
"""After ``[DONE]``, how long we wait for the end of the HTTP body, so that
the connection returns to the pool instead of being closed."""

STREAM_HEADERS = {
    "user-agent": f"pichat/{__version__}",
    "content-type": "application/json",
    "accept": "text/event-stream",
    # Tokens are tiny and latency matters: compressing them costs more than it saves.
    "accept-encoding": "identity",
}


class PooledClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` over ``KeepAliveTransport``, which it names as ``pool``.

    ``HttpChatModel`` sends its streaming requests straight to the pool:
    the client's own path (building the request from its defaults, cookies,
    auth and redirect handling, a wrapper around the body) cost as much per
    message as the transport itself.
    """

    def __init__(self, pool: KeepAliveTransport, timeout: httpx.Timeout) -> None:
        super().__init__(timeout=timeout, transport=pool)
        self.pool = pool


@asynccontextmanager
async def open_http_client(
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the client's, not a deadline
    max_connections: int = 512,
) -> AsyncIterator[PooledClient]:
    """A client sized for many concurrent streams (one connection each under HTTP/1.1),
    closed with its pool on exit.

    ``max_connections`` bounds the sockets to the upstream; a stream that
    finds the pool full waits up to ``timeout.pool`` seconds, then fails.
    """
    async with (
        open_pool(max_connections=max_connections, keepalive_expiry=30.0) as pool,
        PooledClient(pool, timeout) as client,
    ):
        yield client


@dataclass(frozen=True, slots=True)
class HttpCall:
    """One provider request. ``target`` names the deployment or model for logs."""

    url: str
    headers: Mapping[str, str]
    body: bytes
    target: str


class HttpChatModel:
    """A ``ChatModel`` over a streaming chat-completions HTTP API."""

    name = "http"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self._owns_client = client is None
        self._client = httpx.AsyncClient(timeout=self._timeout) if client is None else client
        self._retry = RetryPolicy() if retry is None else retry
        self._pool = self._client.pool if isinstance(self._client, PooledClient) else None
        self._timeouts = self._timeout.as_dict()
        self._urls: dict[str, httpx.URL] = {}
        self._origin_url: httpx.URL | None = None
        """Where ``preconnect`` opens connections; a provider sets it."""

    def _build_call(self, request: ChatRequest) -> HttpCall:
        raise NotImplementedError

    @asynccontextmanager
    async def _exchange(self, call: HttpCall) -> AsyncIterator[httpx.Response]:
        """Send ``call``; the response, closed at the end (its connection back in the pool)."""
        pool = self._pool
        if pool is None:  # a client of the caller's own: its whole path
            async with self._client.stream(
                "POST", call.url, headers=call.headers, content=call.body, timeout=self._timeout
            ) as response:
                yield response
            return
        url = self._urls.get(call.url)
        if url is None:
            url = self._urls[call.url] = httpx.URL(call.url)
        response = await pool.post(url, call.headers, call.body, self._timeouts)
        try:
            yield response
        finally:
            await response.aclose()

    async def preconnect(self, streams: int) -> int:
        """Have connections to the service open for ``streams`` answers at once
        (``KeepAliveTransport.preconnect``); returns how many were opened.

        Nothing to do (0) for a client of the caller's own, which pools its
        connections its own way. Raises ``UpstreamUnavailable`` when the
        service cannot be reached.
        """
        if self._pool is None or self._origin_url is None:
            return 0
        try:
            return await self._pool.preconnect(
                self._origin_url, streams, float(self._timeout.connect or 10.0)
            )
        except httpx.HTTPError as exc:
            raise failure_for_exception(exc, provider=self.name, mid_stream=False).error from exc

    async def aclose(self) -> None:
        """Close the client if this model created it; idempotent."""
        if self._owns_client:
            await self._client.aclose()

    async def stream_reply(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        """Stream one answer; see ``ports.ChatModel``.

        Iterate to the end: after the last delta the generator reads the end
        of the HTTP body so the connection can be reused. Closing it early
        (``aclosing`` on a cancellation) closes the connection at once.
        """
        call = self._build_call(request)
        policy = self._retry
        deadline = trio.current_time() + policy.max_total
        attempt = 0
        while True:
            attempt += 1
            decoder = ChatStreamDecoder()
            in_body = False
            failure: Failure
            try:
                async with self._exchange(call) as response:
                    bind_upstream_request(response.headers)
                    if response.status_code != 200:
                        failure = failure_for_status(
                            response.status_code,
                            await _read_error_body(response),
                            parse_retry_after(response.headers),
                            provider=self.name,
                        )
                    else:
                        in_body = True
                        chunks = body_chunks(response)
                        try:
                            async for data in chunks:
                                for delta in decoder.feed(data):
                                    yield delta
                                if decoder.done:
                                    await _drain(chunks)
                                    break
                            else:
                                for delta in decoder.close():
                                    yield delta
                        finally:
                            await _finish(response, chunks)
                        if decoder.complete:
                            return
                        logger.warning("%s stream ended without [DONE]", self.name)
                        failure = Failure(UpstreamUnavailable(DROPPED), retryable=True)
            except httpx.HTTPError as exc:
                failure = failure_for_exception(exc, provider=self.name, mid_stream=in_body)
            if decoder.emitted or not failure.retryable or attempt >= policy.max_attempts:
                raise failure.error
            delay = policy.delay(attempt, failure.retry_after)
            if trio.current_time() + delay > deadline:
                logger.warning(
                    "%s: not retrying %s, a wait of %.1f s would exceed %.1f s in all",
                    self.name,
                    call.target,
                    delay,
                    policy.max_total,
                )
                raise failure.error
            logger.info(
                "%s: retrying %s in %.2f s (attempt %d of %d)",
                self.name,
                call.target,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            await trio.sleep(delay)


async def _read_error_body(response: httpx.Response) -> bytes:
    """Up to ``_MAX_ERROR_BODY`` bytes; a failure to read leaves the status to speak."""
    body = bytearray()
    chunks = response.aiter_bytes()
    try:
        async for data in chunks:
            body += data
            if len(body) >= _MAX_ERROR_BODY:
                break
    except httpx.HTTPError as exc:
        logger.debug("could not read the error body: %s", exc)
    finally:
        await _finish(response, chunks)
    return bytes(body[:_MAX_ERROR_BODY])


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows ``[DONE]`` (normally only the end of the body), briefly."""
    with trio.move_on_after(_DRAIN_SECONDS):
        try:
            async for _ in chunks:
                pass
        except httpx.HTTPError:
            pass


async def _finish(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """Close the response, then run httpx's iterators to their end on the closed stream.

    httpx reads a body through a stack of async generators; leaving them
    suspended (our consumer closed us mid-answer) hands them to the garbage
    collector, which trio reports as a ResourceWarning (encode/httpx#3686).
    Resuming them after the close makes each one finish at once with a read
    error. Shielded and time-bounded: it also runs when we are cancelled.
    """
    with trio.CancelScope(shield=True, deadline=trio.current_time() + _DRAIN_SECONDS):
        await response.aclose()
        try:
            async for _ in chunks:
                pass
        except (httpx.HTTPError, httpx.StreamError):
            pass
