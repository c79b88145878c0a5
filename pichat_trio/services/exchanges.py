"""Group commit for ``send_message``: messages that arrive together are stored together.

Each ``send_message`` needs one transaction (``Repository.start_exchanges``:
the question, the answer's row, the settings and the history). When many
arrive at once (a class of students pressing enter, devices reconnecting
after a restart), one transaction and one thread hop each queue behind
SQLite's single writer and the thread pool. Here one task takes everything
waiting, up to ``max_batch`` requests, and stores it in one transaction;
the requests that arrive meanwhile form the next batch. A lone request
goes straight through: the batch is whatever is waiting, never a timer.

Failures stay with their request: if a batch's transaction fails, its
requests are retried one by one, so one bad request cannot fail the rest.
"""

from __future__ import annotations

import logging

import trio

from ..models import Exchange, ExchangeRequest
from .db import Database

__all__ = ["ExchangeQueue"]

log = logging.getLogger(__name__)


class _Waiting:
    __slots__ = ("done", "error", "request", "result", "taken")

    def __init__(self, request: ExchangeRequest) -> None:
        self.request = request
        self.done = trio.Event()
        self.taken = False
        self.result: Exchange | None = None
        self.error: BaseException | None = None


class ExchangeQueue:
    def __init__(self, db: Database, max_batch: int = 100) -> None:
        self._db = db
        self._max_batch = max_batch
        self._waiting: list[_Waiting] = []
        self._arrived = trio.Event()

    def __len__(self) -> int:
        return len(self._waiting)

    async def start(self, request: ExchangeRequest) -> Exchange | None:
        """Store ``request``'s exchange (None: not the user's conversation).

        Cancelled before its batch is taken, nothing is stored; once taken,
        the call waits for the transaction's end before it lets the
        cancellation through, as a direct database call would.
        """
        waiting = _Waiting(request)
        self._waiting.append(waiting)
        self._arrived.set()
        try:
            await waiting.done.wait()
        except trio.Cancelled:
            if not waiting.taken:
                self._waiting.remove(waiting)
                raise
            with trio.CancelScope(shield=True):
                await waiting.done.wait()
            raise
        if waiting.error is not None:
            raise waiting.error
        return waiting.result

    async def run(self) -> None:
        """Store batches until cancelled; one task per process (the app's nursery)."""
        while True:
            await self._arrived.wait()
            self._arrived = trio.Event()
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                for waiting in batch:
                    waiting.taken = True
                with trio.CancelScope(shield=True):  # the callers wait for these results
                    await self._store(batch)

    async def _store(self, batch: list[_Waiting]) -> None:
        repository = self._db.repository
        try:
            results = await self._db.run(
                repository.start_exchanges, [waiting.request for waiting in batch]
            )
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            log.warning("storing %d messages together failed (%s); one by one", len(batch), exc)
            for waiting in batch:
                await self._store([waiting])
            return
        for waiting, result in zip(batch, results, strict=True):
            waiting.result = result
            waiting.done.set()
