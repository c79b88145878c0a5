"""What a connection's writer costs while it waits for frames, by the tool it waits with.

    .venv/bin/python bench/waiters.py [--count 10000] [--wakes 100000]

For each way to park the writer (``transport/wakeup.py`` says why it uses
its own): the bytes one waiter holds while idle (tracemalloc, ``--count``
of them; a memory channel counts both ends and their shared state), and
the time of one wake-and-run, a producer handing the writer one item and
the writer taking it (``--wakes`` of them, one task each side).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable

import trio
import trio.lowlevel
import trio.testing

from pichat_trio.transport.wakeup import Wakeup


def bytes_each(make: Callable[[], object], count: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = [make() for _ in range(count)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / len(kept) - 8  # less the list's slot for each


async def wake_channel(wakes: int) -> float:
    send, receive = trio.open_memory_channel[int](256)
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            async for _ in receive:
                pass

        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for index in range(wakes):
            while receive.statistics().tasks_waiting_receive == 0:
                await trio.lowlevel.checkpoint()  # until the writer waits again
            send.send_nowait(index)
        elapsed = time.perf_counter() - start
        await send.aclose()
    return elapsed


async def wake_event(wakes: int) -> float:
    box: list[trio.Event] = [trio.Event()]
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            for _ in range(wakes):
                await box[0].wait()
                box[0] = trio.Event()

        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for _ in range(wakes):
            while box[0].statistics().tasks_waiting == 0:
                await trio.lowlevel.checkpoint()  # until the writer waits again
            box[0].set()
        return time.perf_counter() - start


async def wake_wakeup(wakes: int) -> float:
    wakeup = Wakeup()
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            for _ in range(wakes):
                await wakeup.wait()

        nursery.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for _ in range(wakes):
            while not wakeup.waiting:
                await trio.lowlevel.checkpoint()  # until the writer waits again
            wakeup.wake()
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="idle waiters measured")
    parser.add_argument("--wakes", type=int, default=100000, help="wakes timed")
    args = parser.parse_args(argv)
    rows = [
        ("trio.open_memory_channel(256)", lambda: trio.open_memory_channel(256), wake_channel),
        ("trio.lowlevel.ParkingLot", trio.lowlevel.ParkingLot, None),
        ("trio.Event (one per wait)", trio.Event, wake_event),
        ("wakeup.Wakeup", Wakeup, wake_wakeup),
    ]
    print(f"{'waiter':32} {'bytes idle':>10} {'us per wake':>12}")
    for name, make, wake in rows:
        size = bytes_each(make, args.count)
        per_wake = "" if wake is None else f"{trio.run(wake, args.wakes) / args.wakes * 1e6:.2f}"
        print(f"{name:32} {size:10.0f} {per_wake:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
