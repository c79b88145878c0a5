"""The benchmark's upstream: the project's fake Azure OpenAI, paced by deadline, with a record.

Two differences from ``pichat fake-azure``, both for measuring:

- Tokens are paced against an absolute schedule (token ``i`` at
  ``start + (i + 1) / rate``), so a busy core does not make the upstream
  drift slower than the rate it was asked for, and "offered" means what it
  says. One timer serves every stream (``Schedule``: a heap of waiting
  tasks) instead of a ``trio.sleep_until`` per token, and chunk framing is
  done by hand (the same bytes h11 would send), so the fake costs as little
  as possible on the core it shares with the load.
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
import sys
import time
from pathlib import Path
from typing import Any

import h11
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


class Schedule:
    """One timer for every stream: tasks wait for their due time in a heap.

    A ``trio.sleep_until`` per token costs a cancel scope, a deadline and a
    ``Cancelled`` exception; at 10,000 tokens/s that was a fifth of the
    fake's core. Here a wait is a heap push and a direct reschedule.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, list[trio.lowlevel.Task | None]]] = []
        self._order = itertools.count()
        self._timer: trio.CancelScope | None = None

    async def wait_until(self, when: float) -> None:
        entry: list[trio.lowlevel.Task | None] = [trio.lowlevel.current_task()]
        heapq.heappush(self._heap, (when, next(self._order), entry))
        timer = self._timer
        if timer is not None and when < timer.deadline:
            timer.cancel()  # the runner sleeps past this one: wake it to re-plan

        def abort(_: object) -> trio.lowlevel.Abort:
            entry[0] = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def run(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                task = heapq.heappop(heap)[2][0]
                if task is not None:
                    trio.lowlevel.reschedule(task)
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._timer:
                await trio.sleep_forever()
            self._timer = None


class BenchUpstream(FakeAzureOpenAI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.offset = 0.0  # time.monotonic() - trio.current_time()
        self.schedule = Schedule()

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
        interval = 1 / behaviour.rate if behaviour.rate > 0 else 0.0
        start = trio.current_time()
        token = self.token
        wait_until = self.schedule.wait_until
        for i in range(behaviour.tokens):
            if interval:
                await wait_until(start + (i + 1) * interval)
            await stream.send_all(_chunk(chunks.token(token(i))))
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
            nursery.start_soon(fake.schedule.run)
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
