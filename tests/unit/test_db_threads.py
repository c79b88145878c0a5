"""Database calls in worker threads (``services/db.py``): results, errors, the limit,
cancellation, and a free thread starting before any other task runs."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from pichat_trio.services import db as db_module
from pichat_trio.services.db import Database


def _database(threads: int = 2) -> Database:
    return Database(repository=None, threads=threads)  # type: ignore[arg-type]


async def test_a_call_returns_its_result_or_raises_its_error() -> None:
    database = _database()
    assert await database.run(lambda a, b=0: a + b, 2, b=3) == 5

    def fails() -> None:
        raise LookupError("no such row")

    with pytest.raises(LookupError, match="no such row"):
        await database.run(fails)
    assert await database.run(threading.get_ident) != threading.get_ident()


async def test_no_more_calls_at_once_than_threads() -> None:
    database = _database(threads=2)
    running = 0
    most = 0
    lock = threading.Lock()
    entered = threading.Semaphore(0)
    release = threading.Event()

    def work() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        entered.release()
        release.wait(5)
        with lock:
            running -= 1

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(database.run, work)
        for _ in range(2):  # two are in their threads at once...
            await trio.to_thread.run_sync(entered.acquire)
        release.set()
    assert most == 2  # ...and never a third


async def test_a_started_call_finishes_before_its_cancellation_is_raised() -> None:
    database = _database()
    release = threading.Event()
    done: list[str] = []

    def write() -> str:
        release.wait(5)
        done.append("written")
        return "ok"

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:

            async def cancel_soon() -> None:
                await trio.testing.wait_all_tasks_blocked()
                scope.cancel()
                release.set()

            nursery.start_soon(cancel_soon)
            done.append(await database.run(write))  # the result, not Cancelled...
            await trio.lowlevel.checkpoint()  # ...which the next checkpoint raises
            done.append("not cancelled")
    assert scope.cancelled_caught
    assert done == ["written", "ok"]  # the write was not abandoned


async def test_a_free_thread_is_started_before_other_tasks_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a burst the call must not queue behind every runnable task first."""
    order: list[str] = []
    real_start = trio.lowlevel.start_thread_soon

    def recording_start(*args: object, **kwargs: object) -> None:
        order.append("thread")
        real_start(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(db_module.trio.lowlevel, "start_thread_soon", recording_start)
    database = _database()

    async def other(i: int) -> None:
        order.append(f"task {i}")

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(other, i)  # runnable before the call is made
        await database.run(lambda: None)
    assert order[0] == "thread"
