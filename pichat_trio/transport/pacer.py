"""Pacing of token frames: a frame per connection per tick at most, while tokens flow.

Every WebSocket frame costs the server a send system call, and on one core
those calls are most of the work of a busy server: at 200 streams of 50
tokens/s, a frame per token is 10,000 sends a second. A chat window needs
far fewer updates than that to look smooth. So a token that reaches an
outbox less than ``interval`` seconds after its writer last sent a token of
the same message is held back: it waits (merging with the tokens that
follow it) until the pacer's next tick, which releases every held outbox at
once. The first token of an answer goes out at once, so time to first token
is unchanged; a steady stream arrives in frames about ``interval`` apart.

One task and one timer for the whole server, whatever the number of
connections; holding an outbox back is an append to a list, and the task
waits for the first one on a ``trio.Event``.

Off by default (``FRAME_SECONDS=0``). Measured at 200 streams of 50
tokens/s on one core (``bench/run.py --preset stream200``), 0.04 s cut
token frames by about a fifth (120,700 -> 98,000) but not the server's CPU,
which was saturated either way and already merging, and it raised the gap
p99 from 69 to about 125 ms. It is for clients that want fewer, larger
frames (a Raspberry Pi redrawing a small screen), not for throughput.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .outbox import Outbox

__all__ = ["FramePacer"]


class FramePacer:
    __slots__ = ("_held", "_work", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._held: list[Outbox] = []
        self._work = trio.Event()  # set once an outbox is held

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, outbox: Outbox) -> None:
        """Wake ``outbox``'s writer at the next tick instead of now."""
        self._held.append(outbox)
        self._work.set()

    async def run(self) -> None:
        """Release the held outboxes every ``interval`` seconds while there are any."""
        while True:
            if not self._held:
                self._work = trio.Event()
                await self._work.wait()
            await trio.sleep(self.interval)
            held, self._held = self._held, []
            for outbox in held:
                outbox.nudge()
