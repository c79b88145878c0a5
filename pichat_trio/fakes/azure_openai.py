"""A fake Azure OpenAI chat-completions server, for tests, benchmarks and demos.

It speaks Azure's wire format over real sockets (trio + h11, no framework,
so hundreds of concurrent streams fit on one core) and records what it saw.

Routes:

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=V``
  with ``api-key: KEY``. A missing ``api-version`` or an unknown path is 404,
  a malformed version 400, a wrong key 401 and an unknown deployment 404,
  each with Azure's error JSON.
- ``POST /v1/chat/completions`` (or ``/chat/completions``), OpenAI-compatible,
  with ``Authorization: Bearer KEY``; ``model`` must be a known deployment.

The stream, like Azure's: a first event with ``"choices": []`` and
``prompt_filter_results`` (Azure route only), a ``: keep-alive`` comment, a
role-only delta, one event per token with ``content_filter_results``, a last
chunk with an empty delta and the finish reason, then ``data: [DONE]``. Lines
end in CRLF; the body is chunked. A request's ``max_tokens`` below the answer
length cuts it with ``length``. Tokens are `` word1``, `` word2``, ... unless
``words`` is given.

Behaviour comes from ``FakeAzureOpenAI.behaviour``, from failures queued with
``fail_next``, and per request from markers in the last user message (for
end-to-end tests and benchmarks that cannot reach the object):

==========================  ====================================================
``[fake:tokens:N]``         answer with N tokens
``[fake:rate:R]``           R tokens per second (0: as fast as possible)
``[fake:length]``           end with finish reason ``length``
``[fake:filter]``           HTTP 400, Azure's content-filter error
``[fake:filter:K]``         finish reason ``content_filter`` after K tokens
``[fake:drop:K]``           close the connection after K tokens, without [DONE]
``[fake:stall:K]``          send nothing more after K tokens; keep the socket open
``[fake:truncate:K]``       end the body cleanly after K tokens, without [DONE]
``[fake:NNN]``              answer HTTP NNN (429, 500, 502, 503, 504, 401, ...)
``[fake:NNN:N]``            the same, for the first N requests with this message
``[fake:retry-after:S]``    Retry-After of an error answer, seconds (default 1)
==========================  ====================================================

Run it with ``python -m pichat_trio.fakes.azure_openai --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import re
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import trio

__all__ = [
    "Behaviour",
    "FakeAzureOpenAI",
    "RecordedRequest",
    "main",
    "stream_head",
    "stream_headers",
]

logger = logging.getLogger(__name__)

_MAX_BODY = 4 * 1024 * 1024
"""Bytes of a request body we accept; more is 413 (Azure's limit is higher,
but no test or benchmark needs it)."""

_RECEIVE_BYTES = 64 * 1024
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
_AZURE_PATH = re.compile(r"/openai/deployments/([^/]+)/chat/completions")
_OPENAI_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_MARKER = re.compile(r"\[fake:([a-z-]+|\d{3})(?::([0-9.]+))?\]")
_REDACTED = "<redacted>"
_SEND_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError)
_SECRET_HEADERS = frozenset({"api-key", "authorization"})

EndedBy = Literal["complete", "client", "dropped"]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the fake answers. ``None`` means "not this failure"."""

    tokens: int = 20
    rate: float = 0.0
    """Tokens per second; 0 sends them as fast as the socket takes them."""
    finish_reason: Literal["stop", "length"] = "stop"
    status: int | None = None
    """Answer every request with this HTTP error instead of a stream."""
    retry_after: float | None = 1.0
    """Seconds, sent as ``retry-after`` and ``retry-after-ms`` on 429 and 503."""
    prompt_filter: bool = False
    """Answer HTTP 400 with Azure's content-filter error."""
    filter_after: int | None = None
    drop_after: int | None = None
    stall_after: int | None = None
    truncate_after: int | None = None


@dataclass(eq=False)
class RecordedRequest:
    """One request as the fake saw it (the key value never recorded).

    ``ended_by`` says how the exchange ended: ``complete`` (the fake wrote
    the whole response), ``client`` (the client closed the connection, or a
    send failed, first) or ``dropped`` (the fake closed it on purpose).
    ``disconnected_at`` is the trio time of that end.
    """

    index: int
    method: str
    target: str
    route: Literal["azure", "openai", "other"]
    deployment: str | None
    headers: dict[str, str]
    body: Any
    started_at: float
    status: int = 200
    first_token_at: float | None = None
    tokens_sent: int = 0
    disconnected_at: float | None = None
    ended_by: EndedBy | None = None
    _ended: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        return messages if isinstance(messages, list) else []

    def _end(self, how: EndedBy) -> None:
        if self.ended_by is None:
            self.ended_by = how
            self.disconnected_at = trio.current_time()
            self._ended.set()


class _Closed(Exception):
    """The connection is over; stop serving it."""


class FakeAzureOpenAI:
    """The fake's knobs and record. ``serve`` runs it; see the module docstring."""

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
                request, body = await self._receive_request(conn, stream)
                await self._respond(conn, stream, request, body)
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except _Closed:
            return
        except h11.RemoteProtocolError as exc:
            logger.info("bad request: %s", exc)
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                with contextlib.suppress(*_SEND_ERRORS):
                    await _send_simple(conn, stream, exc.error_status_hint, {"error": str(exc)})
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def _receive_request(
        self, conn: h11.Connection, stream: trio.SocketStream
    ) -> tuple[h11.Request, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(_RECEIVE_BYTES))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    await _send_simple(conn, stream, 413, {"error": "request body too large"})
                    raise _Closed
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                return request, bytes(body)
            else:  # ConnectionClosed, or PAUSED after a response that closes
                raise _Closed

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
            await _send_simple(conn, stream, *refusal)
            record._end("complete")
            return
        behaviour = self._behaviour_for(record)
        failure = _failure_response(behaviour, record, self.api_key)
        if failure is not None:
            record.status = failure[0]
            await _send_simple(conn, stream, *failure)
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
        if record.route == "other":
            return 404, {"error": {"code": "404", "message": "Resource not found"}}, {}
        if record.method != "POST":
            return 405, {"error": {"code": "405", "message": "Method not allowed"}}, {}
        if record.route == "azure":
            versions = parse_qs(query).get("api-version")
            if not versions:
                return 404, {"error": {"code": "404", "message": "Resource not found"}}, {}
            if not _API_VERSION.fullmatch(versions[0]):
                message = "API version not supported"
                return 400, {"error": {"code": "BadRequest", "message": message}}, {}
            if headers.get("api-key") != self.api_key:
                return 401, _azure_unauthorized(), {}
            if record.deployment not in self.deployments:
                return 404, _deployment_not_found(), {}
        else:
            if headers.get("authorization") != f"Bearer {self.api_key}":
                return 401, _openai_error("Incorrect API key provided.", "invalid_api_key"), {}
            model = record.body.get("model") if isinstance(record.body, dict) else None
            if model not in self.deployments:
                message = f"The model `{model}` does not exist or you do not have access to it."
                return 404, _openai_error(message, "model_not_found"), {}
        if not isinstance(record.body, dict) or not record.messages:
            message = "'messages' is a required property" if raw else "Invalid JSON body"
            return 400, {"error": {"code": "BadRequest", "message": message}}, {}
        if record.body.get("stream") is not True:
            message = "this fake answers only streamed requests (stream: true)"
            return 400, {"error": {"code": "BadRequest", "message": message}}, {}
        return None

    def _behaviour_for(self, record: RecordedRequest) -> Behaviour:
        """The object's behaviour, then queued failures, then the message's markers."""
        behaviour = self.behaviour
        if self._failures:
            status, retry_after = self._failures.popleft()
            behaviour = dataclasses.replace(behaviour, status=status, retry_after=retry_after)
        text = _last_user_text(record.messages)
        if "[fake:" in text:
            behaviour = _apply_markers(behaviour, text, self._marker_hits)
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
            nursery.start_soon(_watch_for_close, conn, stream, record, nursery.cancel_scope)
            try:
                ended = await self._send_events(conn, stream, record, behaviour)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                ended = "client"
            nursery.cancel_scope.cancel()
        record._end(ended)  # the watcher may have recorded "client" first
        if record.ended_by != "complete":
            raise _Closed

    async def _send_events(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        record: RecordedRequest,
        behaviour: Behaviour,
    ) -> EndedBy:
        chunks = _ChunkWriter(record.index, self.model_name, azure=record.route == "azure")
        await stream.send_all(stream_head(conn, record) + _data(conn, chunks.opening()))
        interval = 1 / behaviour.rate if behaviour.rate > 0 else 0.0
        finish: str = behaviour.finish_reason
        for i in range(behaviour.tokens + 1):
            if i == behaviour.drop_after:
                return "dropped"
            if i == behaviour.stall_after:
                await trio.sleep_forever()
            if i == behaviour.truncate_after:
                await stream.send_all(_end(conn))
                return "complete"
            if i == behaviour.filter_after:
                finish = "content_filter"
                break
            if i == behaviour.tokens:
                break
            if interval:
                await trio.sleep(interval)
            await stream.send_all(_data(conn, chunks.token(self.token(i))))
            if i == 0:
                record.first_token_at = trio.current_time()
            record.tokens_sent = i + 1
        await stream.send_all(
            _data(conn, chunks.finish(finish) + b"data: [DONE]\r\n\r\n") + _end(conn)
        )
        return "complete"


# ------------------------------------------------------------ wire helpers


def stream_head(conn: h11.Connection, record: RecordedRequest) -> bytes:
    """The status line and headers of a streamed answer, as Azure sends them."""
    head = conn.send(h11.Response(status_code=200, headers=stream_headers(record)))
    return head or b""


def stream_headers(record: RecordedRequest) -> list[tuple[str, str]]:
    """The headers of a streamed answer (chunked), as Azure sends them."""
    return [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("transfer-encoding", "chunked"),
        ("x-request-id", f"fake-{record.index}"),
    ]


class _ChunkWriter:
    """Pre-built bytes around each token, so a token costs one small encode."""

    __slots__ = ("_azure", "_safe", "_tail")

    def __init__(self, index: int, model: str, *, azure: bool) -> None:
        self._azure = azure
        self._safe = b'"content_filter_results":' + _SAFE + b"," if azure else b""
        created = int(time.time())
        self._tail = (
            f'"created":{created},"id":"chatcmpl-fake{index}","model":"{model}",'
            f'"object":"chat.completion.chunk","system_fingerprint":"fp_fake"}}\r\n\r\n'
        ).encode()

    def _event(self, results: bytes, delta: bytes, finish: bytes) -> bytes:
        return b"".join(
            (
                b'data: {"choices":[{',
                results,
                b'"delta":',
                delta,
                b',"finish_reason":',
                finish,
                b',"index":0,"logprobs":null}],',
                self._tail,
            )
        )

    def opening(self) -> bytes:
        """Prompt filter results and a comment (Azure only), then the role-only delta."""
        role = b'{"role":"assistant","content":""}'
        if not self._azure:
            return self._event(b"", role, b"null")
        prompt = (
            b'data: {"choices":[],"created":0,"id":"","model":"","object":"",'
            b'"prompt_filter_results":[{"prompt_index":0,"content_filter_results":'
            + _SAFE_PROMPT
            + b"}]}\r\n\r\n"
        )
        return (
            prompt
            + b": keep-alive\r\n\r\n"
            + self._event(b'"content_filter_results":{},', role, b"null")
        )

    def token(self, text: str) -> bytes:
        return self._event(self._safe, b'{"content":' + msgspec.json.encode(text) + b"}", b"null")

    def finish(self, reason: str) -> bytes:
        results = b""
        if self._azure:
            filters = _FILTERED if reason == "content_filter" else b"{}"
            results = b'"content_filter_results":' + filters + b","
        return self._event(results, b"{}", b'"' + reason.encode() + b'"')


def _results(filtered: str | None) -> bytes:
    categories = {
        name: {"filtered": name == filtered, "severity": "medium" if name == filtered else "safe"}
        for name in ("hate", "self_harm", "sexual", "violence")
    }
    return msgspec.json.encode(categories)


_SAFE = _results(None)
_SAFE_PROMPT = _SAFE[:-1] + b',"jailbreak":{"filtered":false,"detected":false}}'
_FILTERED = _results("violence")


def _data(conn: h11.Connection, payload: bytes) -> bytes:
    return conn.send(h11.Data(data=payload)) or b""


def _end(conn: h11.Connection) -> bytes:
    return conn.send(h11.EndOfMessage()) or b""


async def _watch_for_close(
    conn: h11.Connection,
    stream: trio.SocketStream,
    record: RecordedRequest,
    scope: trio.CancelScope,
) -> None:
    """Notice a client going away between tokens (or during a stall) at once."""
    while True:
        try:
            data = await stream.receive_some(_RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            record._end("client")
            scope.cancel()
            return
        conn.receive_data(data)  # a pipelined request: h11 keeps it for later


async def _send_simple(
    conn: h11.Connection,
    stream: trio.SocketStream,
    status: int,
    payload: object,
    extra_headers: dict[str, str] | None = None,
) -> None:
    body = msgspec.json.encode(payload)
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        *(extra_headers or {}).items(),
    ]
    data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    data += _data(conn, body) + _end(conn)
    await stream.send_all(data)


def _failure_response(
    behaviour: Behaviour, record: RecordedRequest, api_key: str
) -> tuple[int, object, dict[str, str]] | None:
    if behaviour.prompt_filter:
        return 400, _content_filter_error(), {}
    status = behaviour.status
    if status is None:
        return None
    headers: dict[str, str] = {}
    if behaviour.retry_after is not None and status in (429, 503):
        headers["retry-after"] = str(math.ceil(behaviour.retry_after))
        headers["retry-after-ms"] = str(round(behaviour.retry_after * 1000))
    if status == 400:
        return 400, _content_filter_error(), headers
    if status == 401:
        if record.route == "azure":
            return 401, _azure_unauthorized(), headers
        return 401, _openai_error("Incorrect API key provided.", "invalid_api_key"), headers
    if status == 429:
        seconds = math.ceil(behaviour.retry_after or 1)
        message = (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
            f"Please retry after {seconds} seconds."
        )
        return 429, {"error": {"code": "429", "message": message}}, headers
    messages = {
        500: ("InternalServerError", "The server had an error while processing your request."),
        502: ("BadGateway", "Bad gateway."),
        503: ("ServiceUnavailable", "The service is temporarily unable to process your request."),
        504: ("GatewayTimeout", "The operation was timeout."),
    }
    code, message = messages.get(status, (str(status), "Injected failure."))
    return status, {"error": {"code": code, "message": message}}, headers


def _content_filter_error() -> object:
    return {
        "error": {
            "message": (
                "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry."
            ),
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": msgspec.json.decode(_FILTERED),
            },
        }
    }


def _azure_unauthorized() -> object:
    message = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource."
    )
    return {"error": {"code": "401", "message": message}}


def _deployment_not_found() -> object:
    message = (
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again."
    )
    return {"error": {"code": "DeploymentNotFound", "message": message}}


def _openai_error(message: str, code: str) -> object:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def _apply_markers(behaviour: Behaviour, text: str, hits: dict[str, int]) -> Behaviour:
    changes: dict[str, Any] = {}
    for name, value in _MARKER.findall(text):
        number = float(value) if value else None
        count = int(number) if number is not None else None
        if name.isdigit():
            if count is not None:
                seen = hits.get(text, 0)
                hits[text] = seen + 1
                if seen >= count:
                    continue
            changes["status"] = int(name)
        elif name == "tokens" and count is not None:
            changes["tokens"] = count
        elif name == "rate" and number is not None:
            changes["rate"] = number
        elif name == "length":
            changes["finish_reason"] = "length"
        elif name == "filter":
            if count is None:
                changes["prompt_filter"] = True
            else:
                changes["filter_after"] = count
        elif name in ("drop", "stall", "truncate") and count is not None:
            changes[f"{name}_after"] = count
        elif name == "retry-after" and number is not None:
            changes["retry_after"] = number
        else:
            logger.warning("unknown fake marker [fake:%s%s]", name, f":{value}" if value else "")
    return dataclasses.replace(behaviour, **changes) if changes else behaviour


# ---------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fake-azure",
        description=(
            "A fake Azure OpenAI chat-completions server that streams deterministic answers "
            "(' word1 word2 ...') in Azure's exact SSE format. Point PiChat at it with the "
            "endpoint and key it prints. Put markers such as [fake:429], [fake:drop:5] or "
            "[fake:tokens:200] in a message to choose a behaviour per request; see "
            "pichat_trio/fakes/azure_openai.py for the list."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=8089, help="port; 0 picks a free one (%(default)s)"
    )
    parser.add_argument("--tokens", type=int, default=20, help="tokens per answer (%(default)s)")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="tokens per second, 0 = no pacing (%(default)s)"
    )
    parser.add_argument(
        "--api-key", default="fake-key", help="the key clients must send (%(default)s)"
    )
    parser.add_argument(
        "--deployments",
        default="gpt-4,gpt-35-turbo",
        help="comma-separated deployment names, also the OpenAI model ids (%(default)s)",
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the fake until interrupted; returns the process exit status."""
    args = _parser().parse_args(argv)
    deployments = [name.strip() for name in args.deployments.split(",") if name.strip()]
    if not deployments or args.tokens < 0 or args.rate < 0:
        _parser().error("need at least one deployment, and tokens and rate not negative")
    logging.basicConfig(level=args.log_level)
    fake = FakeAzureOpenAI(
        api_key=args.api_key,
        deployments=deployments,
        behaviour=Behaviour(tokens=args.tokens, rate=args.rate),
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(fake.serve, args.host, args.port)
            url = f"http://{args.host}:{port}"
            print(f"fake Azure OpenAI listening on {url}", flush=True)
            print(f"  endpoint:    {url}", flush=True)
            print(f"  api key:     {args.api_key}", flush=True)
            print(f"  deployments: {', '.join(deployments)}", flush=True)
            print(f"  OpenAI-compatible base URL: {url}/v1", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
