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

Requests whose last user message carries ``bench:TAG`` are matched to the
load's messages by that tag. Failure markers (``[fake:drop:K]`` ...) fall
back to the fake's own code path.
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

import h11
import outcome
import trio

from pichat_trio.fakes.azure_openai import (
    Behaviour,
    EndedBy,
    FakeAzureOpenAI,
    RecordedRequest,
    _ChunkWriter,
    _last_user_text,
    stream_head,
)
from pichat_trio.gc_tuning import tune_for_serving

_TAG = re.compile(r"bench:(\S+)")


class _Stream:
    """One answer being paced: its socket, its chunks, and the task that owns it."""

    __slots__ = ("chunk", "count", "error", "interval", "next", "raw", "record", "start", "task")

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
        self.task: trio.lowlevel.Task | None = None
        self.error: BaseException | None = None

    def due(self) -> float:
        return self.start + (self.next + 1) * self.interval


class Pump:
    """One task and one timer that write every stream's tokens when they are due.

    A task per stream sleeping until each token (``trio.sleep_until``: a
    cancel scope, a deadline and a ``Cancelled`` exception) and then sending
    it through trio's socket layer cost most of the fake's core at 10,000
    tokens/s. Here a due token is written straight to the socket (it is
    non-blocking) from one loop; the stream's own task wakes only when the
    socket is full, fails, or the answer is done.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Stream]] = []
        self._order = itertools.count()
        self._timer: trio.CancelScope | None = None

    async def stream(self, job: _Stream) -> None:
        """Send ``job``'s chunks on schedule; returns when all are sent."""
        stream_task = trio.lowlevel.current_task()
        while job.next < job.count:
            job.task = stream_task
            self._push(job)

            def abort(_: object) -> trio.lowlevel.Abort:
                job.task = None  # the pump drops a job without a task
                return trio.lowlevel.Abort.SUCCEEDED

            leftover = await trio.lowlevel.wait_task_rescheduled(abort)
            if job.error is not None:
                raise trio.BrokenResourceError from job.error
            while leftover:  # the socket was full: wait until it takes the rest
                await trio.lowlevel.wait_writable(job.raw)
                try:
                    leftover = leftover[job.raw.send(leftover) :]
                except BlockingIOError:
                    continue
                except OSError as exc:
                    raise trio.BrokenResourceError from exc

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
                if job.task is not None:
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
            self._wake(job, b"")
            return
        job.next += 1
        if job.next == 1:
            job.record.first_token_at = now
        job.record.tokens_sent = job.next
        if sent < len(chunk) or job.next == job.count:
            self._wake(job, chunk[sent:])
        else:
            heapq.heappush(self._heap, (job.due(), next(self._order), job))

    @staticmethod
    def _wake(job: _Stream, leftover: bytes) -> None:
        task, job.task = job.task, None
        assert task is not None
        trio.lowlevel.reschedule(task, outcome.Value(leftover))


class BenchUpstream(FakeAzureOpenAI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset = 0.0  # time.monotonic() - trio.current_time()
        self.pump = Pump()

    async def _send_events(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        record: RecordedRequest,
        behaviour: Behaviour,
    ) -> EndedBy:
        if any(
            value is not None
            for value in (
                behaviour.drop_after,
                behaviour.stall_after,
                behaviour.truncate_after,
                behaviour.filter_after,
            )
        ):
            return await super()._send_events(conn, stream, record, behaviour)
        chunks = _ChunkWriter(record.index, self.model_name, azure=record.route == "azure")
        await stream.send_all(stream_head(conn, record) + _chunk(chunks.opening()))
        token = self.token

        def body(i: int) -> bytes:
            return _chunk(chunks.token(token(i)))

        if behaviour.rate > 0:
            with socket.fromfd(stream.socket.fileno(), socket.AF_INET, socket.SOCK_STREAM) as raw:
                raw.setblocking(False)
                job = _Stream(
                    raw, body, behaviour.tokens, trio.current_time(), 1 / behaviour.rate, record
                )
                await self.pump.stream(job)
        else:
            for i in range(behaviour.tokens):
                await stream.send_all(body(i))
                if i == 0:
                    record.first_token_at = trio.current_time()
                record.tokens_sent = i + 1
        tail = chunks.finish(behaviour.finish_reason) + b"data: [DONE]\r\n\r\n"
        # h11 frames the end, so it knows the exchange is over (keep-alive).
        await stream.send_all(_chunk(tail) + (conn.send(h11.EndOfMessage()) or b""))
        return "complete"

    def summary(self) -> list[dict[str, Any]]:
        off = self.offset
        rows = []
        for r in self.requests:
            match = _TAG.search(_last_user_text(r.messages))
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
