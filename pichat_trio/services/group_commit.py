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

Batches follow each other in the worker thread: when a batch is stored,
its results go to trio (``run_sync_soon``: the requests are woken in the
next scheduler round) and the same thread takes what is waiting and
stores it, under a lock shared with the requests that arrive. When the
next batch waited for trio to see the thread end, each batch cost a
scheduler round, and while 200 answers end together a round is 10-30 ms:
their final writes, 2-8 ms each batch, were spread over 130 ms. A thread
stores at most ``max_chain`` batches in a row; then the task starts the
next batch as any database call, behind the calls already waiting for a
thread.

Failures stay with their request: if a batch's transaction fails, its
requests are retried one by one, so one bad request cannot fail the rest.
Without the task (not started yet, or stopped at shutdown) a request is
stored on its own, as a plain database call.

A database that stops answering holds the chain's thread: the task waits
for it no longer than the database's timeout, then the batch in that
thread fails with ``Unavailable`` (its outcome is unknown: the client is
told so), the thread takes no further batch, and the task goes on with a
fresh thread for what arrives. An ``Unavailable`` batch fails as a whole,
not request by request: one bad request does not make the database go
away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Generic, TypeVar

import outcome
import trio

from ..errors import Unavailable
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
        max_chain: int = 8,
    ) -> None:
        self._db = db
        self._store_all = store
        self._max_batch = max_batch
        self._max_chain = max_chain
        self._waiting: list[_Waiting[Request, Result]] = []
        self._lock = threading.Lock()  # ``_waiting`` and ``taken``: the worker takes batches
        self._arrived = trio.Event()
        self._running = False
        self._chain_ended = trio.Event()  # set when a chain of batches stops
        self._failed: tuple[list[_Waiting[Request, Result]], BaseException] | None = None
        self._chain_id = 0  # which chain may take batches: a given-up one may not
        self._in_thread: list[_Waiting[Request, Result]] = []  # the chain's current batch

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
            with self._lock:
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
            with self._lock:
                taken = waiting.taken
                if not taken and not waiting.orphaned:
                    self._waiting.remove(waiting)
            if not taken:
                raise
            with trio.CancelScope(shield=True):
                await waiting.done.wait()
            raise
        if waiting.orphaned:
            return await self._alone(waiting.request)
        if waiting.error is not None:
            raise waiting.error
        return waiting.result  # type: ignore[return-value]

    def committed(self, ticket: Ticket[Request, Result]) -> Result | None:
        """The result of a request whose transaction has committed, else None.

        For a caller whose ``result`` was cancelled: once taken, the request
        may well be stored, and what it stored may need finishing.
        """
        if ticket.taken and ticket.done.is_set() and ticket.error is None:
            return ticket.result
        return None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Store batches until cancelled; one task per kind (``nursery.start`` it)."""
        self._running = True
        task_status.started()
        try:
            while True:
                await self._arrived.wait()
                self._arrived = trio.Event()
                while batch := self._take():
                    with trio.CancelScope(shield=True):  # the callers wait for these results
                        self._chain_ended = trio.Event()
                        if self._launch(batch):
                            with trio.move_on_after(self._db.timeout):
                                await self._chain_ended.wait()
                            if not self._chain_ended.is_set():
                                self._give_up_chain()
                                continue
                            failed, self._failed = self._failed, None
                            if failed is not None:
                                await self._one_by_one(*failed)
                        else:  # no free thread: wait for one, as any database call
                            await self._store(batch)
        finally:
            self._running = False
            with self._lock:
                left, self._waiting = self._waiting, []
            for waiting in left:  # they store themselves, one by one
                waiting.orphaned = True
                waiting.done.set()

    def _give_up_chain(self) -> None:
        """The chain's thread has not ended in time: its batch fails, it takes no more."""
        with self._lock:
            self._chain_id += 1
            stuck, self._in_thread = self._in_thread, []
        error = Unavailable(f"the database did not answer within {self._db.timeout:g} s")
        log.warning("the database did not answer a batch of %d in time", len(stuck))
        for waiting in stuck:
            if not waiting.done.is_set():
                waiting.error = error
                waiting.done.set()

    def _take(self, chain: int | None = None) -> list[_Waiting[Request, Result]]:
        """The next batch (empty when nothing waits), marked taken; any thread.

        ``chain``: the taking chain's id; a chain given up on gets nothing.
        """
        with self._lock:
            if chain is not None and chain != self._chain_id:
                return []
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            for waiting in batch:
                waiting.taken = True
            if chain is not None:
                self._in_thread = batch
        return batch

    def _launch(self, batch: list[_Waiting[Request, Result]]) -> bool:
        """Start storing ``batch``, and the batches that follow it, in a thread if one
        is free; ``_chain_ended`` is set once that thread stops."""
        token = trio.lowlevel.current_trio_token()
        self._in_thread = batch
        chain = partial(self._chain, batch, token, self._chain_id)
        return self._db.start_soon(chain, partial(self._stopped, self._chain_id))

    def _chain(
        self,
        batch: list[_Waiting[Request, Result]],
        token: trio.lowlevel.TrioToken,
        chain: int,
    ) -> None:
        """In the worker thread: store ``batch``, hand its results to trio, and go on
        with what is waiting until nothing is, ``max_chain`` batches are stored,
        or a batch fails (then the task retries that one, request by request)."""
        for stored in range(1, self._max_chain + 1):
            try:
                results = self._store_all([waiting.request for waiting in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for {len(batch)} requests")
            except BaseException as exc:
                with self._lock:
                    if chain == self._chain_id:
                        self._failed = (batch, exc)
                return
            token.run_sync_soon(_deliver, batch, results)
            if stored == self._max_chain:
                return
            batch = self._take(chain)
            if not batch:
                return

    def _stopped(self, chain: int, ended: outcome.Outcome[None]) -> None:
        """The chain's thread is done (in trio's thread, after its last results)."""
        if isinstance(ended, outcome.Error) and self._failed is None:  # not from a batch
            log.error("the group commit's thread failed", exc_info=ended.error)
        if chain == self._chain_id:  # a chain given up on has been replaced
            self._chain_ended.set()

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
        """After ``batch`` failed with ``exc``: each request alone, so only its own fails
        (all of them at once when the database is not answering)."""
        if len(batch) == 1 or isinstance(exc, Unavailable):
            for waiting in batch:
                waiting.error = exc
                waiting.done.set()
            return
        log.warning("storing %d requests together failed (%s); one by one", len(batch), exc)
        for waiting in batch:
            await self._store([waiting])


def _deliver(batch: list[_Waiting[Request, Result]], results: list[Result]) -> None:
    """Each request gets its result and is woken (unless it was given up on)."""
    for waiting, result in zip(batch, results, strict=True):
        if waiting.done.is_set():
            continue
        waiting.result = result
        waiting.done.set()
