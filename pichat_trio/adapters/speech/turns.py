"""Turns at the offline recogniser, shared fairly between users.

There is one pocketsphinx decoder (its model costs about 90 MB, too much to
keep one per user on a Raspberry Pi), and it decodes one utterance at a
time. A recognition is a *job*; it decodes its audio in chunks of a few
seconds, one *turn* per chunk. Turns go to the waiting owners in the order
they asked, and an owner asks again only after its turn, so owners take
turns round robin. One owner's jobs run one after another (first come,
first served). A user with many long clips queued therefore holds the
decoder for one chunk at a time, and another user's short clip waits for at
most the chunk in progress.

Each owner may have ``jobs_per_owner`` jobs admitted (decoding or queued);
past that ``job`` raises ``RateLimited`` at once, so the queue is bounded
by owners times that number, and no request waits without limit.

Everything here runs on the trio loop; the chunks themselves are decoded in
worker threads by the engine, inside a turn.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from ...errors import RateLimited

__all__ = ["Turns"]

_RETRY_AFTER_MS = 1000  # about one chunk of another job: when a slot may be free


class Turns:
    """Round-robin turns at one shared worker, with a bounded queue per owner.

    Observable for tests and metrics: ``holder``, ``waiting``, ``jobs`` and
    ``wait_until``, which wakes on every change of state.
    """

    def __init__(self, *, jobs_per_owner: int) -> None:
        self._jobs_per_owner = jobs_per_owner
        self._jobs: dict[str, int] = {}
        self._owner_locks: dict[str, trio.Lock] = {}
        self._holder: str | None = None
        self._queue: deque[tuple[str, trio.Event]] = deque()
        self._changed = trio.Event()

    # -------------------------------------------------------- observing

    @property
    def holder(self) -> str | None:
        """The owner whose turn it is, if any."""
        return self._holder

    @property
    def waiting(self) -> tuple[str, ...]:
        """Owners waiting for a turn, next first."""
        return tuple(owner for owner, _ in self._queue)

    def jobs(self, owner: str) -> int:
        """How many of ``owner``'s jobs are admitted (decoding or queued)."""
        return self._jobs.get(owner, 0)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; it is checked after every change."""
        while not condition():
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -------------------------------------------------------------- jobs

    @asynccontextmanager
    async def job(self, owner: str) -> AsyncIterator[None]:
        """Admit one job of ``owner`` and wait for its earlier jobs to end.

        Raises ``RateLimited`` when ``owner`` already has ``jobs_per_owner``.
        """
        admitted = self._jobs.get(owner, 0)
        if admitted >= self._jobs_per_owner:
            raise RateLimited(
                f"at most {self._jobs_per_owner} speech recognitions per user at once",
                _RETRY_AFTER_MS,
            )
        self._jobs[owner] = admitted + 1
        lock = self._owner_locks.setdefault(owner, trio.Lock())  # trio's Lock is fair: FIFO
        self._notify()
        try:
            async with lock:
                yield
        finally:
            self._jobs[owner] -= 1
            if not self._jobs[owner]:
                del self._jobs[owner], self._owner_locks[owner]
            self._notify()

    @asynccontextmanager
    async def turn(self, owner: str) -> AsyncIterator[None]:
        """Hold the worker for one chunk; wait behind the owners that asked first."""
        await self._acquire(owner)
        try:
            yield
        finally:
            self._pass_on()

    async def _acquire(self, owner: str) -> None:
        if self._holder is None and not self._queue:
            self._holder = owner
            self._notify()
            return
        entry = (owner, trio.Event())
        self._queue.append(entry)
        self._notify()
        try:
            await entry[1].wait()
        except BaseException:
            if entry[1].is_set():  # granted, then cancelled: the turn goes on
                self._pass_on()
            else:
                self._queue.remove(entry)
                self._notify()
            raise

    def _pass_on(self) -> None:
        if self._queue:
            owner, granted = self._queue.popleft()
            self._holder = owner
            granted.set()
        else:
            self._holder = None
        self._notify()
