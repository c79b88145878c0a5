"""The read timeouts of a pool's connections, kept by one task instead of a cancel scope each.

A cancel scope with a deadline around each wait (what ``trio.move_on_after``
gives) cost 5-7 us a read: its entry in trio's deadline heap, its status
object, its exit; a tenth of a token's CPU at 200 streams. Measured by
``bench/micro.py``'s ``scope`` line: 3.6-4.9 us a checkpoint, 9.9-10.8 us
with the scope; and by ``bench/run.py``'s stream200 run, server CPU 12.6 /
12.8 s with a scope per read, 10.8 / 12.0 s with this (bench/README.md,
item 35). Here a waiting read is an entry in a dict, and
one task sleeps until the earliest deadline; a read still waiting then is
woken by ``notify_closing`` on its socket (``ClosedResourceError`` in the
read, which reports ``ReadTimeout``), and its connection is closed, as
``notify_closing`` requires.

The task is ``run``, started in the nursery of the pool that owns the
deadlines (``pool.open_pool``); it sleeps while no read is waiting and ends
when that nursery does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["ReadDeadlines"]


class ReadDeadlines:
    """The deadline of every connection of a pool that is waiting for bytes."""

    __slots__ = ("_idle", "_sleep", "_target", "_waiting")

    def __init__(self) -> None:
        self._waiting: dict[Connection, float] = {}
        self._idle: trio.Event | None = None  # set by add() while the task waits for work
        self._sleep: trio.CancelScope | None = None  # the task's sleep until ``_target``
        self._target = math.inf

    def add(self, connection: Connection, deadline: float) -> None:
        """``connection`` waits for bytes until ``deadline`` (trio time)."""
        self._waiting[connection] = deadline
        if self._idle is not None:
            self._idle.set()
        elif deadline < self._target and self._sleep is not None:
            self._sleep.cancel()  # sooner than the task is sleeping for

    def discard(self, connection: Connection) -> None:
        self._waiting.pop(connection, None)

    async def run(self) -> None:
        """Wake the reads whose deadline has passed, until cancelled."""
        waiting = self._waiting
        while True:
            if not waiting:
                self._idle = trio.Event()
                await self._idle.wait()
                self._idle = None
                continue
            self._target = min(waiting.values())
            with trio.CancelScope() as self._sleep:
                await trio.sleep_until(self._target)
            self._sleep = None
            now = trio.current_time()
            for connection, deadline in list(waiting.items()):
                if deadline <= now:
                    del waiting[connection]
                    connection.timed_out = True
                    trio.lowlevel.notify_closing(connection.socket)
