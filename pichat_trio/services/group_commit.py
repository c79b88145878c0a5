"""Group commit: database writes that arrive together are stored together.

Every ``send_message`` needs one transaction (``Repository.start_exchanges``:
the question, the answer's row, the settings and the history), and every
answer one more at its end (``Repository.finish_messages``). They come in
bursts: a class pressing enter at once, devices reconnecting after a
restart, and then all those answers ending together. One transaction and
one thread hop each would queue behind SQLite's single writer and the
thread pool, and each ``send_message`` behind every answer's final write.
Here one task per kind takes everything waiting, up to ``max_batch``, and
stores it in one transaction; what arrives meanwhile forms the next batch.
A lone request goes straight through: the batch is whatever is waiting,
never a timer.

Batches follow each other without a task switch: when a batch's thread
ends, the callback that receives its results (``Database.start_soon``)
starts the next batch and wakes the requests, in the scheduler round that
sees the thread end. Through the task, each batch cost a whole extra
round, and in a burst of 200 messages a round is 15-35 ms.

Failures stay with their request: if a batch's transaction fails, its
requests are retried one by one, so one bad request cannot fail the rest.
Without the task (not started yet, or stopped at shutdown) a request is
stored on its own, as a plain database call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

import outcome
import trio

from .db import Database

__all__ = ["GroupCommit", "Ticket"]

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Result = TypeVar("Result")


class _Waiting(Generic[Request, Result]):
    __slots__ = ("done", "error", "orphaned", "request", "result", "taken")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.done = trio.Event()
        self.taken = False
        self.orphaned = False  # the task stopped before taking it
        self.result: Result | None = None
        self.error: BaseException | None = None


Ticket = _Waiting
"""A request queued by ``GroupCommit.enqueue``, for ``GroupCommit.result``."""


class GroupCommit(Generic[Request, Result]):
    """Runs ``store(requests) -> results`` (one transaction) for batches of requests."""

    def __init__(
        self,
        db: Database,
        store: Callable[[Sequence[Request]], list[Result]],
        max_batch: int = 100,
    ) -> None:
        self._db = db
        self._store_all = store
        self._max_batch = max_batch
        self._waiting: list[_Waiting[Request, Result]] = []
        self._arrived = trio.Event()
        self._running = False
        self._chain_ended = trio.Event()  # set when a chain of batches stops
        self._failed: tuple[list[_Waiting[Request, Result]], BaseException] | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    async def submit(self, request: Request) -> Result:
        """Store ``request`` with whatever else is waiting; its own result.

        Cancelled before its batch is taken, nothing is stored; once taken,
        the call waits for the transaction's end before it lets the
        cancellation through, as a direct database call would.
        """
        return await self.result(self.enqueue(request))

    def enqueue(self, request: Request) -> Ticket[Request, Result]:
        """Queue ``request`` now, without waiting; ``result(ticket)`` waits for it.

        For a caller that hands the wait to another task: the request is in
        the next batch whatever that task's first step is.
        """
        waiting: _Waiting[Request, Result] = _Waiting(request)
        if self._running:
            self._waiting.append(waiting)
            self._arrived.set()
        else:  # no task: ``result`` stores it on its own
            waiting.orphaned = True
            waiting.done.set()
        return waiting

    async def result(self, ticket: Ticket[Request, Result]) -> Result:
        """The result of an ``enqueue``d request; see ``submit``."""
        waiting = ticket
        try:
            await waiting.done.wait()
        except trio.Cancelled:
            if not waiting.taken:
                if not waiting.orphaned:
                    self._waiting.remove(waiting)
                raise
            with trio.CancelScope(shield=True):
                await waiting.done.wait()
            raise
        if waiting.orphaned:
            return await self._alone(waiting.request)
        if waiting.error is not None:
            raise waiting.error
        return waiting.result  # type: ignore[return-value]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Store batches until cancelled; one task per kind (``nursery.start`` it)."""
        self._running = True
        task_status.started()
        try:
            while True:
                await self._arrived.wait()
                self._arrived = trio.Event()
                while self._waiting:
                    batch = self._take()
                    with trio.CancelScope(shield=True):  # the callers wait for these results
                        self._chain_ended = trio.Event()
                        if self._launch(batch):
                            await self._chain_ended.wait()
                            failed, self._failed = self._failed, None
                            if failed is not None:
                                await self._one_by_one(*failed)
                        else:  # no free thread: wait for one, as any database call
                            await self._store(batch)
        finally:
            self._running = False
            for waiting in self._waiting:  # they store themselves, one by one
                waiting.orphaned = True
                waiting.done.set()
            self._waiting.clear()

    def _take(self) -> list[_Waiting[Request, Result]]:
        batch = self._waiting[: self._max_batch]
        del self._waiting[: self._max_batch]
        for waiting in batch:
            waiting.taken = True
        return batch

    def _launch(self, batch: list[_Waiting[Request, Result]]) -> bool:
        """Start storing ``batch`` in a thread, if one is free; ``_landed`` gets the results."""
        requests = [waiting.request for waiting in batch]
        return self._db.start_soon(partial(self._store_all, requests), partial(self._landed, batch))

    def _landed(
        self, batch: list[_Waiting[Request, Result]], stored: outcome.Outcome[list[Result]]
    ) -> None:
        """A batch's thread ended (in trio's thread, not a task: must not raise).

        The next batch starts first, so the database works while these
        requests' tasks run; a failed batch, or no free thread, ends the
        chain and the task takes over.
        """
        try:
            results = stored.unwrap()
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for {len(batch)} requests")
        except BaseException as exc:  # a callback must not raise: the task retries
            self._failed = (batch, exc)
            self._chain_ended.set()
            return
        if self._waiting:
            following = self._take()
            if not self._launch(following):
                self._waiting[:0] = following  # the task stores them, in order
                for waiting in following:
                    waiting.taken = False
                self._chain_ended.set()
        else:
            self._chain_ended.set()
        _deliver(batch, results)

    async def _alone(self, request: Request) -> Result:
        [result] = await self._db.run(self._store_all, [request])
        return result

    async def _store(self, batch: list[_Waiting[Request, Result]]) -> None:
        try:
            results = await self._db.run(self._store_all, [waiting.request for waiting in batch])
        except Exception as exc:
            await self._one_by_one(batch, exc)
            return
        _deliver(batch, results)

    async def _one_by_one(self, batch: list[_Waiting[Request, Result]], exc: BaseException) -> None:
        """After ``batch`` failed with ``exc``: each request alone, so only its own fails."""
        if len(batch) == 1:
            batch[0].error = exc
            batch[0].done.set()
            return
        log.warning("storing %d requests together failed (%s); one by one", len(batch), exc)
        for waiting in batch:
            await self._store([waiting])


def _deliver(batch: list[_Waiting[Request, Result]], results: list[Result]) -> None:
    """Each request gets its result and is woken."""
    for waiting, result in zip(batch, results, strict=True):
        waiting.result = result
        waiting.done.set()
