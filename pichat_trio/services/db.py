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

A call waits at most ``timeout`` seconds, for a thread and for its
answer together: then it raises ``Unavailable`` (the client's
``unavailable``), and a call that had started is left to end in its
thread, which with its connection stays taken until it does. That is what
keeps a hung database (a network partition: packets go unanswered, and no
driver timeout covers a query already sent) from holding every request
with it: the requests get their answer in time, the pool's threads are
used up one by one, and later calls wait only ``timeout`` for a thread.

``start_soon`` is the same without a waiting task: the outcome goes to a
callback in trio's thread as soon as the worker ends. A task woken from a
thread runs only after a whole round of the scheduler, and in a burst one
round is every runnable task (15-35 ms for 200 messages); the group
commit uses the callback to hand out a batch's results and start the next
batch in the round the worker's end is seen, not one later.

This module is the one place that replaces ``trio.to_thread.run_sync``.
``bench/db_threads.py`` measures why, on a loop of 50 busy tasks of
0.3 ms (two runs, 200 calls each, on a shared two-core machine): a thread
starts 26-31 ms (median) after the call through ``run_sync``, 5 ms
through ``run`` (the GIL's switch interval); a result reaches a waiting
task 40-51 ms after the thread's end, and a ``start_soon`` callback
20-31 ms after it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import outcome
import trio

from ..errors import Unavailable
from ..metrics import Metrics
from ..ports import Repository

__all__ = ["Database"]

T = TypeVar("T")


class Database:
    def __init__(
        self,
        repository: Repository,
        threads: int,
        metrics: Metrics | None = None,
        *,
        timeout: float = 4.0,
    ) -> None:
        self.repository = repository
        self.timeout = timeout
        self._limiter = trio.CapacityLimiter(threads)
        self._seconds = (Metrics() if metrics is None else metrics).db_seconds

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (a repository method) in a worker thread.

        ``Unavailable`` after ``timeout`` seconds without an answer.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        deadline = trio.current_time() + self.timeout
        call = partial(fn, *args, **kwargs)
        ended: list[outcome.Outcome[T]] = []
        done = trio.Event()

        def wake(result: outcome.Outcome[T]) -> None:
            ended.append(result)
            done.set()

        if not self.start_soon(call, wake):
            borrower = object()
            acquired = False
            with trio.move_on_at(deadline):
                await self._limiter.acquire_on_behalf_of(borrower)
                acquired = True
            if not acquired:
                raise Unavailable(
                    f"the database did not answer within {self.timeout:g} s "
                    "(every connection is waiting for it)"
                )
            self._start(call, wake, borrower)
        with trio.CancelScope(deadline=deadline, shield=True):  # a started call is not
            await done.wait()  # abandoned when the caller is cancelled, only when late
        if not ended:
            raise Unavailable(f"the database did not answer within {self.timeout:g} s")
        return ended[0].unwrap()

    def start_soon(
        self, fn: Callable[[], T], deliver: Callable[[outcome.Outcome[T]], object]
    ) -> bool:
        """Start ``fn()`` in a worker thread now, if a thread is free; else False.

        ``deliver(outcome)`` runs later in trio's thread (a ``run_sync_soon``
        callback: it must not raise, and it may set events and start calls).
        """
        borrower = object()
        try:
            self._limiter.acquire_on_behalf_of_nowait(borrower)
        except trio.WouldBlock:
            return False
        self._start(fn, deliver, borrower)
        return True

    def _start(
        self,
        fn: Callable[[], T],
        deliver: Callable[[outcome.Outcome[T]], object],
        borrower: object,
    ) -> None:
        token = trio.lowlevel.current_trio_token()
        context = contextvars.copy_context()
        started = trio.current_time()

        def ended(result: outcome.Outcome[T]) -> None:  # trio's thread
            self._limiter.release_on_behalf_of(borrower)
            self._seconds.observe(trio.current_time() - started)
            deliver(result)

        def hand_over(result: outcome.Outcome[T]) -> None:  # the worker's thread
            # A call given up on may outlive its trio run: then nobody waits for it.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(ended, result)

        trio.lowlevel.start_thread_soon(partial(context.run, fn), hand_over)
