"""The fake's object: its knobs, its record of requests, and the loop that serves them."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import socket
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import h11
import msgspec
import trio

from .checks import check_request
from .failures import failure_response
from .http import (
    SEND_ERRORS,
    Closed,
    data_bytes,
    end_bytes,
    receive_request,
    send_simple,
    watch_for_close,
)
from .markers import apply_markers, last_user_text
from .records import Behaviour, EndedBy, RecordedRequest
from .wire import ChunkWriter, stream_head

__all__ = ["FakeAzureOpenAI"]

logger = logging.getLogger(__name__)

_AZURE_PATH = re.compile(r"/openai/deployments/([^/]+)/chat/completions")
_OPENAI_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_REDACTED = "<redacted>"
_SECRET_HEADERS = frozenset({"api-key", "authorization"})


class FakeAzureOpenAI:
    """The fake's knobs and record. ``serve`` runs it; see the package's docstring."""

    def __init__(
        self,
        *,
        api_key: str = "fake-key",
        deployments: Sequence[str] = ("gpt-4", "gpt-35-turbo"),
        behaviour: Behaviour | None = None,
        words: Sequence[str] | None = None,
        model_name: str = "gpt-4o-2024-08-06",
    ) -> None:
        self.api_key = api_key
        self.deployments = list(deployments)
        self.behaviour = Behaviour() if behaviour is None else behaviour
        self.words = list(words) if words else None
        self.model_name = model_name
        self.requests: list[RecordedRequest] = []
        self.port: int | None = None
        self.connections = 0
        """TCP connections accepted: with keep-alive, fewer than requests."""
        self._failures: deque[tuple[int, float | None]] = deque()
        self._marker_hits: dict[str, int] = {}
        self._arrived = trio.Event()

    # ----------------------------------------------------------- the API

    @property
    def endpoint(self) -> str:
        """The Azure endpoint (``http://host:port``) once ``serve`` has started."""
        if self.port is None:
            raise RuntimeError("the fake is not serving yet")
        return f"http://127.0.0.1:{self.port}"

    def token(self, i: int) -> str:
        """The ``i``-th (0-based) token of every answer."""
        return self.words[i % len(self.words)] if self.words else f" word{i + 1}"

    def answer(self, tokens: int | None = None) -> str:
        """The text of an answer of ``tokens`` tokens (default: ``behaviour.tokens``)."""
        count = self.behaviour.tokens if tokens is None else tokens
        return "".join(self.token(i) for i in range(count))

    def fail_next(self, status: int, times: int = 1, *, retry_after: float | None = 1.0) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (400: content filter)."""
        self._failures.extend([(status, retry_after)] * times)

    async def wait_request(self, index: int) -> RecordedRequest:
        """Wait until request ``index`` (0-based) has arrived."""
        while len(self.requests) <= index:
            await self._arrived.wait()
        return self.requests[index]

    async def wait_disconnected(self, index: int) -> RecordedRequest:
        """Wait until request ``index`` has ended (``ended_by`` says how)."""
        request = await self.wait_request(index)
        await request._ended.wait()
        return request

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until cancelled; ``task_status.started(port)`` once listening.

        Every connection waiting is accepted at once: ``trio.serve_listeners``
        accepts one per trip through the scheduler, and 200 streams opening
        together on a busy core (the benchmark's) waited up to 155 ms in the
        accept queue, the fake's delay counted as the server's.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        for extra in listeners[1:]:
            await extra.aclose()
        listener = socket.socket(fileno=listeners[0].socket.detach())
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        task_status.started(self.port)
        with listener:
            async with trio.open_nursery() as nursery:
                while True:
                    await trio.lowlevel.wait_readable(listener)
                    while True:
                        try:
                            conn, _ = listener.accept()
                        except BlockingIOError:
                            break
                        except ConnectionAbortedError:
                            continue
                        nursery.start_soon(self._serve_socket, conn)

    async def _serve_socket(self, conn: socket.socket) -> None:
        """Serve one accepted connection (a subclass may read the socket itself)."""
        await self._serve_connection(trio.SocketStream(trio.socket.from_stdlib_socket(conn)))

    async def _serve_connection(self, stream: trio.SocketStream, received: bytes = b"") -> None:
        """Serve ``stream``; ``received``: bytes already read from it, not yet parsed."""
        try:
            await self._handle_connection(stream, received)
        finally:
            await trio.aclose_forcefully(stream)

    # ------------------------------------------------------- connections

    async def _handle_connection(self, stream: trio.SocketStream, received: bytes) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        if received:
            conn.receive_data(received)
        try:
            while True:
                request, body = await receive_request(conn, stream)
                await self._respond(conn, stream, request, body)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except Closed:
            return
        except h11.RemoteProtocolError as exc:
            logger.info("bad request: %s", exc)
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(*SEND_ERRORS):
                    await send_simple(conn, stream, exc.error_status_hint, {"error": str(exc)})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _respond(
        self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request, raw: bytes
    ) -> None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        record, query = self._record(request.method, request.target, headers, raw)
        self._admit(record)
        refusal = self._check(record, headers, query, raw)
        if refusal is not None:
            record.status = refusal[0]
            await send_simple(conn, stream, *refusal)
            record._end("complete")
            return
        behaviour = self._behaviour_for(record)
        failure = failure_response(behaviour, record, self.api_key)
        if failure is not None:
            record.status = failure[0]
            await send_simple(conn, stream, *failure)
            record._end("complete")
            return
        await self._stream_answer(conn, stream, record, behaviour)

    def _record(
        self, method: bytes, target: bytes, headers: dict[str, str], raw: bytes
    ) -> tuple[RecordedRequest, str]:
        """The record of a request (not yet in ``requests``: see ``_admit``) and its query."""
        path = target.decode("latin-1")
        split = urlsplit(path)
        azure = _AZURE_PATH.fullmatch(split.path)
        route: Literal["azure", "openai", "other"] = (
            "azure" if azure else "openai" if split.path in _OPENAI_PATHS else "other"
        )
        try:
            body: Any = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = None
        record = RecordedRequest(
            index=len(self.requests),
            method=method.decode("latin-1"),
            target=path,
            route=route,
            deployment=azure.group(1) if azure else None,
            headers={k: _REDACTED if k in _SECRET_HEADERS else v for k, v in headers.items()},
            body=body,
            started_at=trio.current_time(),
        )
        return record, split.query

    def _admit(self, record: RecordedRequest) -> None:
        """Add ``record`` to ``requests`` and wake whoever waits for it."""
        self.requests.append(record)
        self._arrived.set()
        self._arrived = trio.Event()

    def _check(
        self, record: RecordedRequest, headers: dict[str, str], query: str, raw: bytes
    ) -> tuple[int, object, dict[str, str]] | None:
        """The error answer a real service would give to a malformed request, if any."""
        return check_request(
            record, headers, query, raw, api_key=self.api_key, deployments=self.deployments
        )

    def _behaviour_for(self, record: RecordedRequest) -> Behaviour:
        """The object's behaviour, then queued failures, then the message's markers."""
        behaviour = self.behaviour
        if self._failures:
            status, retry_after = self._failures.popleft()
            behaviour = dataclasses.replace(behaviour, status=status, retry_after=retry_after)
        text = last_user_text(record.messages)
        if "[fake:" in text:
            behaviour = apply_markers(behaviour, text, self._marker_hits)
        max_tokens = record.body.get("max_tokens")
        if isinstance(max_tokens, int) and 0 <= max_tokens < behaviour.tokens:
            behaviour = dataclasses.replace(behaviour, tokens=max_tokens, finish_reason="length")
        return behaviour

    # ---------------------------------------------------------- streaming

    async def _stream_answer(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        record: RecordedRequest,
        behaviour: Behaviour,
    ) -> None:
        """Stream the answer while watching for the client going away."""
        ended: EndedBy = "client"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_for_close, conn, stream, record, nursery.cancel_scope)
            try:
                ended = await self._send_events(conn, stream, record, behaviour)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                ended = "client"
            nursery.cancel_scope.cancel()
        record._end(ended)  # the watcher may have recorded "client" first
        if record.ended_by != "complete":
            raise Closed

    async def _send_events(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        record: RecordedRequest,
        behaviour: Behaviour,
    ) -> EndedBy:
        chunks = ChunkWriter(record.index, self.model_name, azure=record.route == "azure")
        await stream.send_all(stream_head(conn, record) + data_bytes(conn, chunks.opening()))
        interval = 1 / behaviour.rate if behaviour.rate > 0 else 0.0
        finish: str = behaviour.finish_reason
        for i in range(behaviour.tokens + 1):
            if i == behaviour.drop_after:
                return "dropped"
            if i == behaviour.stall_after:
                await trio.sleep_forever()
            if i == behaviour.truncate_after:
                await stream.send_all(end_bytes(conn))
                return "complete"
            if i == behaviour.filter_after:
                finish = "content_filter"
                break
            if i == behaviour.tokens:
                break
            if interval:
                await trio.sleep(interval)
            await stream.send_all(data_bytes(conn, chunks.token(self.token(i))))
            if i == 0:
                record.first_token_at = trio.current_time()
            record.tokens_sent = i + 1
        await stream.send_all(
            data_bytes(conn, chunks.finish(finish) + b"data: [DONE]\r\n\r\n") + end_bytes(conn)
        )
        return "complete"
