"""One task parked until another wakes it: how a connection's writer waits for frames.

Trio's own tools were measured for this first. ``bench/waiters.py`` prints
the bytes one idle waiter holds and the time of one wake-and-run; on the
project's machine (Python 3.11, trio 0.35, with other work on the machine, so the
times are rough):

    waiter                           bytes idle  us per wake
    trio.open_memory_channel(256)          1793        57
    trio.lowlevel.ParkingLot                241
    trio.Event (one per wait)               273        41
    wakeup.Wakeup                            41        40

- A memory channel per connection is 1.8 KB, 18 MB for 10,000 idle
  devices, and the wrong shape: the outbox merges a message's tokens into
  its frame *already queued* and drops the queue when the client is given
  up on, and a channel's buffer cannot be reached after ``send``. The bound
  that matters (frames queued, however many tokens merged) is the
  outbox's.
- A ``ParkingLot`` or an ``Event`` is six times this one-slot waiter, and an
  ``Event`` is one-shot: a new one for every wait of a streaming writer.
- ``Wakeup`` is made on the writer's first wait; a wake is a
  ``reschedule``; at most one task (the writer) waits on it.

The idle memory per connection it keeps small is ``bench/conn_memory.py``'s
figure, the time per token ``bench/run.py``'s. The server-wide frame pacer,
one task for all connections, waits on a ``trio.Event`` (``pacer.py``):
there the cost does not multiply.
"""

from __future__ import annotations

import trio

__all__ = ["Wakeup"]


class Wakeup:
    """A parking place for one task, woken by any other (or by cancellation)."""

    __slots__ = ("_task",)

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None

    @property
    def waiting(self) -> bool:
        return self._task is not None

    async def wait(self) -> None:
        """Until ``wake`` (one waiter at a time)."""
        assert self._task is None, "one task waits here at a time"
        self._task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def wake(self) -> None:
        """Wake the waiting task, if there is one."""
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)
