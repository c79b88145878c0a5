"""A database call's way into its worker thread and back, on a busy trio loop.

    .venv/bin/python bench/db_threads.py [--calls 200] [--busy 50] [--work-ms 0.3]

``services/db.py`` starts its worker threads itself instead of calling
``trio.to_thread.run_sync``; this measures why. While ``--busy`` tasks each
compute ``--work-ms`` then pass a checkpoint (a loop as busy as the server's
in a burst of messages), one task makes ``--calls`` calls one after the
other, each a call of 0.5 ms in a thread, three ways:

- ``run_sync``: ``trio.to_thread.run_sync`` behind a ``CapacityLimiter``;
- ``Database.run``: the project's call, which waits for the result;
- ``Database.start_soon``: the project's call whose result goes to a
  callback (what the group commit uses).

For each it prints how long the call took to begin in its thread (from the
call) and how long its result took to reach trio (from the thread's end to
the waiting task running again, or to the callback), median, p90 and max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from functools import partial

import outcome
import trio

from pichat_trio.services.db import Database

_CALL_SECONDS = 0.0005
"""The thread's work: about a short SQLite transaction."""


def _call(stamps: list[float]) -> None:
    """The thread's work; it notes when it began and ended."""
    stamps.append(time.perf_counter())
    time.sleep(_CALL_SECONDS)
    stamps.append(time.perf_counter())


def _figures(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    return (
        f"{name}: median {statistics.median(ordered) * 1e3:.2f} ms, "
        f"p90 {p90 * 1e3:.2f} ms, max {ordered[-1] * 1e3:.2f} ms"
    )


async def _measure(args: argparse.Namespace) -> list[str]:
    work = args.work_ms / 1e3
    lines: list[str] = []

    async def busy() -> None:
        while True:
            until = time.perf_counter() + work
            while time.perf_counter() < until:
                pass
            await trio.lowlevel.checkpoint()

    limiter = trio.CapacityLimiter(8)
    # A long timeout: a thread kept from the GIL by the busy loop shows as a long start
    # (seen here: seconds, now and then), where the server's 4 s would raise instead.
    database = Database(repository=None, threads=8, timeout=120)  # type: ignore[arg-type]

    async def through_run_sync(fn: Callable[[], None]) -> float:
        await trio.to_thread.run_sync(fn, limiter=limiter)
        return time.perf_counter()

    async def through_run(fn: Callable[[], None]) -> float:
        await database.run(fn)
        return time.perf_counter()

    async def through_callback(fn: Callable[[], None]) -> float:
        done = trio.Event()
        arrived: list[float] = []

        def deliver(result: outcome.Outcome[None]) -> None:  # in trio's thread
            arrived.append(time.perf_counter())
            result.unwrap()
            done.set()

        if not database.start_soon(fn, deliver):
            raise RuntimeError("no free thread")
        await done.wait()
        return arrived[0]

    ways: list[tuple[str, Callable[[Callable[[], None]], Awaitable[float]]]] = [
        ("run_sync", through_run_sync),
        ("Database.run", through_run),
        ("Database.start_soon", through_callback),
    ]
    async with trio.open_nursery() as nursery:
        for _ in range(args.busy):
            nursery.start_soon(busy)
        await trio.sleep(0.1)  # every busy task running
        for name, way in ways:
            starts: list[float] = []
            backs: list[float] = []
            for _ in range(args.calls):
                stamps: list[float] = []
                call = partial(_call, stamps)
                asked = time.perf_counter()
                arrived = await way(call)  # when the result reached trio
                starts.append(stamps[0] - asked)
                backs.append(arrived - stamps[1])
            lines.append(_figures(f"{name}, thread start", starts))
            lines.append(_figures(f"{name}, result back in trio", backs))
        nursery.cancel_scope.cancel()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per way")
    parser.add_argument("--busy", type=int, default=50, help="busy tasks on the loop")
    parser.add_argument("--work-ms", type=float, default=0.3, help="CPU per busy task's step")
    args = parser.parse_args(argv)
    print(f"{args.busy} busy tasks of {args.work_ms:g} ms, {args.calls} calls each way")
    for line in trio.run(_measure, args):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
