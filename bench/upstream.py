"""The benchmark's upstream: the project's fake Azure OpenAI, paced by deadline, with a record.

Two differences from ``pichat fake-azure``, both for measuring:

- Tokens are paced against an absolute schedule (token ``i`` at
  ``start + (i + 1) / rate``), so a busy core does not make the upstream
  drift slower than the rate it was asked for, and "offered" means what it
  says. One loop writes every stream's due tokens (``Pump``: a heap and
  one timer) instead of a task sleeping per token, and chunk framing is
  done by hand (the same bytes h11 would send), so the fake costs as little
  as possible on the core it shares with the load. Each chunk is encoded
  when it is due: encoding whole answers as their requests arrived put
  about 130 ms of work on that core when 200 requests came at once.
- Every request is recorded with ``time.monotonic()`` times (system-wide on
  Linux, so comparable with the load processes): when it arrived, when the
  first token went out, when the server hung up. The record is written as
  JSON to ``--record`` when the process gets SIGTERM or SIGINT.

A connection is read and answered straight on its socket, one task each,
without h11, trio's socket layer or a watcher task: through the fake's own
path a request cost about 400 us of the shared core, so 200 requests
arriving together reached it over 50 ms and their first tokens went out
up to 75 ms after arrival instead of 20 ms, all of it counted in the
server's TTFT. A request the fast path does not cover (an error answer, a
failure marker such as ``[fake:drop:K]``, a chunked body) hands the
connection to the fake's own code from that request on.

Requests whose last user message carries ``bench:TAG`` are matched to the
load's messages by that tag.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from pichat_trio.fakes.azure_openai import (
    Behaviour,
    FakeAzureOpenAI,
    RecordedRequest,
    stream_headers,
)
from pichat_trio.fakes.azure_openai.http import MAX_BODY
from pichat_trio.fakes.azure_openai.markers import MARKER, last_user_text
from pichat_trio.fakes.azure_openai.wire import ChunkWriter
from pichat_trio.gc_tuning import tune_for_serving

_TAG = re.compile(r"bench:(\S+)")
_RECEIVE_BYTES = 64 * 1024
_MAX_HEAD = 64 * 1024


class _Hangup(Exception):
    """The client closed the connection (or it failed)."""


class _Socket:
    """An accepted socket, non-blocking, read and written directly; ``buffer``
    holds what was read and not yet taken as a request."""

    __slots__ = ("buffer", "raw")

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.buffer = b""

    async def receive(self) -> None:
        """Add what arrives to ``buffer``; ``_Hangup`` when the client has closed."""
        while True:
            try:
                data = self.raw.recv(_RECEIVE_BYTES)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.raw)
                continue
            except OSError as exc:
                raise _Hangup from exc
            if not data:
                raise _Hangup
            self.buffer += data
            return

    async def send_all(self, data: bytes) -> None:
        while data:
            try:
                data = data[self.raw.send(data) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self.raw)
            except OSError as exc:
                raise _Hangup from exc

    async def request(self) -> tuple[bytes, bytes, dict[str, str], bytes, bytes] | None:
        """The next request's method, target, headers, body and whole bytes, taken
        from ``buffer``.

        None, with the bytes left in ``buffer``, for a request this reader does
        not cover: not HTTP/1.1, a chunked body, ``Expect`` or
        ``Connection: close``, a malformed head.
        """
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > _MAX_HEAD:
                return None
            await self.receive()
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        start = lines[0].split(" ")
        if len(start) != 3 or start[2] != "HTTP/1.1":
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                return None
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length", "0")
        if (
            not length.isdigit()
            or int(length) > MAX_BODY
            or "transfer-encoding" in headers
            or "expect" in headers
            or headers.get("connection", "").lower() == "close"
        ):
            return None
        total = end + 4 + int(length)
        while len(self.buffer) < total:
            await self.receive()
        whole, self.buffer = self.buffer[:total], self.buffer[total:]
        return start[0].encode(), start[1].encode(), headers, whole[end + 4 :], whole


class _Stream:
    """One answer being paced: its socket, its chunks, and how the pump reaches its task."""

    __slots__ = (
        "chunk",
        "count",
        "error",
        "interval",
        "leftover",
        "live",
        "next",
        "raw",
        "record",
        "scope",
        "start",
    )

    def __init__(
        self,
        raw: socket.socket,
        chunk: Callable[[int], bytes],
        count: int,
        start: float,
        interval: float,
        record: RecordedRequest,
    ) -> None:
        self.raw = raw
        self.chunk = chunk  # encodes chunk i when it is due, not all at the request
        self.count = count
        self.start = start
        self.interval = interval
        self.record = record
        self.next = 0  # index of the next chunk to send
        self.live = False  # the pump sends its chunks (else it drops it from the heap)
        self.scope = trio.CancelScope()  # the pump cancels it to hand the stream back
        self.leftover = b""  # what the socket did not take
        self.error: BaseException | None = None

    def due(self) -> float:
        return self.start + (self.next + 1) * self.interval


class Pump:
    """One task and one timer that write every stream's tokens when they are due.

    A task per stream sleeping until each token (``trio.sleep_until``: a
    cancel scope, a deadline and a ``Cancelled`` exception) and then sending
    it through trio's socket layer cost most of the fake's core at 10,000
    tokens/s. Here a due token is written straight to the socket (it is
    non-blocking) from one loop. The stream's own task meanwhile waits for
    its socket to become readable, so a client hanging up is seen at once;
    the pump hands the stream back (cancels that wait) only when the socket
    is full, fails, or the answer is done.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Stream]] = []
        self._order = itertools.count()
        self._timer: trio.CancelScope | None = None

    async def stream(self, job: _Stream, sock: _Socket) -> None:
        """Send ``job``'s chunks on schedule; ``_Hangup`` if the client goes first."""
        while job.next < job.count:
            job.scope = trio.CancelScope()
            job.live = True
            self._push(job)
            try:
                with job.scope:
                    while True:  # until the pump needs us; a pipelined request waits in sock
                        await sock.receive()
            except _Hangup:
                job.live = False  # the pump drops it
                raise
            if job.error is not None:
                raise _Hangup from job.error
            leftover, job.leftover = job.leftover, b""
            await sock.send_all(leftover)

    def _push(self, job: _Stream) -> None:
        when = job.due()
        heapq.heappush(self._heap, (when, next(self._order), job))
        timer = self._timer
        if timer is not None and when < timer.deadline:
            timer.cancel()  # the pump sleeps past this one: wake it to re-plan

    async def run(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                job = heapq.heappop(heap)[2]
                if job.live:
                    self._send_due(job, now)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._timer:
                await trio.sleep_forever()
            self._timer = None

    def _send_due(self, job: _Stream, now: float) -> None:
        chunk = job.chunk(job.next)
        try:
            sent = job.raw.send(chunk)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            job.error = exc
            self._hand_back(job, b"")
            return
        job.next += 1
        if job.next == 1:
            job.record.first_token_at = now
        job.record.tokens_sent = job.next
        if sent < len(chunk) or job.next == job.count:
            self._hand_back(job, chunk[sent:])
        else:
            heapq.heappush(self._heap, (job.due(), next(self._order), job))

    @staticmethod
    def _hand_back(job: _Stream, leftover: bytes) -> None:
        job.live = False
        job.leftover = leftover
        job.scope.cancel()


class BenchUpstream(FakeAzureOpenAI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset = 0.0  # time.monotonic() - trio.current_time()
        self.pump = Pump()
        self.handed_over = 0
        """Connections the fast path handed to the fake's own path."""

    async def _serve_socket(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections += 1
        sock = _Socket(conn)
        try:
            handed_over = await self._serve_fast(sock)
        except BaseException:
            _close(conn)
            raise
        if not handed_over:
            _close(conn)
            return
        self.connections -= 1  # the fake's own path counts it
        self.handed_over += 1
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
        await self._serve_connection(stream, sock.buffer)

    async def _serve_fast(self, sock: _Socket) -> bool:
        """Answer requests until the client hangs up (False) or one needs the
        fake's own path (True: its bytes are back at the start of ``sock.buffer``)."""
        try:
            while True:
                request = await sock.request()
                if request is None:
                    return True
                method, target, headers, body, whole = request
                record, query = self._record(method, target, headers, body)
                behaviour = self._plain(record, headers, query, body)
                if behaviour is None:
                    sock.buffer = whole + sock.buffer
                    return True
                self._admit(record)
                await self._answer(sock, record, behaviour)
        except _Hangup:
            return False

    def _plain(
        self, record: RecordedRequest, headers: dict[str, str], query: str, body: bytes
    ) -> Behaviour | None:
        """How to stream ``record``'s answer; None when it gets an error answer or
        a failure, which the fake's own path gives (and counts)."""
        if self._failures or self._check(record, headers, query, body) is not None:
            return None
        text = last_user_text(record.messages)
        if any(name.isdigit() for name, _ in MARKER.findall(text)):
            return None
        behaviour = self._behaviour_for(record)
        failures = (
            behaviour.status,
            behaviour.drop_after,
            behaviour.stall_after,
            behaviour.truncate_after,
            behaviour.filter_after,
        )
        if behaviour.prompt_filter or any(value is not None for value in failures):
            return None
        return behaviour

    async def _answer(self, sock: _Socket, record: RecordedRequest, behaviour: Behaviour) -> None:
        """Stream the answer; ``_Hangup`` (recorded) if the client goes first."""
        chunks = ChunkWriter(record.index, self.model_name, azure=record.route == "azure")
        token = self.token

        def body(i: int) -> bytes:
            return _chunk(chunks.token(token(i)))

        try:
            await sock.send_all(_head(record) + _chunk(chunks.opening()))
            if behaviour.rate > 0:
                interval = 1 / behaviour.rate
                job = _Stream(
                    sock.raw, body, behaviour.tokens, trio.current_time(), interval, record
                )
                await self.pump.stream(job, sock)
            else:
                for i in range(behaviour.tokens):
                    await sock.send_all(body(i))
                    if i == 0:
                        record.first_token_at = trio.current_time()
                    record.tokens_sent = i + 1
                    # A send the socket takes whole does not yield: without this one
                    # answer's 500 tokens would hold up every other request's reading.
                    await trio.lowlevel.checkpoint()
            tail = chunks.finish(behaviour.finish_reason) + b"data: [DONE]\r\n\r\n"
            await sock.send_all(_chunk(tail) + b"0\r\n\r\n")
        except _Hangup:
            record._end("client")
            raise
        record._end("complete")

    def summary(self) -> list[dict[str, Any]]:
        off = self.offset
        rows = []
        for r in self.requests:
            match = _TAG.search(last_user_text(r.messages))
            rows.append(
                {
                    "tag": match.group(1) if match else None,
                    "status": r.status,
                    "started": r.started_at + off,
                    "first_token": None if r.first_token_at is None else r.first_token_at + off,
                    "ended": None if r.disconnected_at is None else r.disconnected_at + off,
                    "ended_by": r.ended_by,
                    "tokens_sent": r.tokens_sent,
                }
            )
        return rows


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _head(record: RecordedRequest) -> bytes:
    """The status line and headers of the fake's streamed answer (h11 puts
    ``transfer-encoding`` last; the order does not matter)."""
    fields = "".join(f"{name}: {value}\r\n" for name, value in stream_headers(record))
    return f"HTTP/1.1 200 \r\n{fields}\r\n".encode("latin-1")


def _close(conn: socket.socket) -> None:
    trio.lowlevel.notify_closing(conn)
    conn.close()


async def _run(args: argparse.Namespace) -> None:
    fake = BenchUpstream(behaviour=Behaviour(tokens=args.tokens, rate=args.rate))
    fake.offset = time.monotonic() - trio.current_time()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fake.pump.run)
            port = await nursery.start(fake.serve, "127.0.0.1", args.port)
            print(f"PORT {port}", flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    if args.record:
        Path(args.record).write_text(json.dumps(fake.summary()))  # noqa: ASYNC240 - at exit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--record", help="write the request record here (JSON) at exit")
    args = parser.parse_args(argv)
    tune_for_serving()  # as the server: fewer, cheaper collections while streaming
    trio.run(_run, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
