"""Blocking repository calls, run in worker threads behind a capacity limiter.

The limiter has as many tokens as the pool has connections, so a burst of
requests queues in trio (cheap, cancellable) rather than in the pool (a
blocked thread each).

A call with a free token starts its thread at once. ``trio.to_thread.run_sync``
first passes through the scheduler (taking the limiter's token is a
checkpoint), and in a burst that puts the database call behind every task
that is runnable at that moment: 200 messages arriving together made the
first transaction wait 60 ms before its thread began. As with
``run_sync``, a call that has started runs to its end and returns its
result; a cancellation arriving meanwhile is raised at the caller's next
checkpoint.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio

from ..ports import Repository

__all__ = ["Database"]

T = TypeVar("T")


class Database:
    def __init__(self, repository: Repository, threads: int) -> None:
        self.repository = repository
        self._limiter = trio.CapacityLimiter(threads)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (a repository method) in a worker thread."""
        await trio.lowlevel.checkpoint_if_cancelled()
        limiter = self._limiter
        borrower = object()
        try:
            limiter.acquire_on_behalf_of_nowait(borrower)
        except trio.WouldBlock:
            await limiter.acquire_on_behalf_of(borrower)
        try:
            return await _in_thread(partial(fn, *args, **kwargs))
        finally:
            limiter.release_on_behalf_of(borrower)


async def _in_thread(fn: Callable[[], T]) -> T:
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()
    context = contextvars.copy_context()

    def deliver(result: Any) -> None:  # in the worker: hand the outcome to the task
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    trio.lowlevel.start_thread_soon(partial(context.run, fn), deliver)
    value: T = await trio.lowlevel.wait_task_rescheduled(
        lambda _: trio.lowlevel.Abort.FAILED  # a started call is not abandoned
    )
    return value
