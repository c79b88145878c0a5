"""A connection's outbox: bounded, merging, drained by the writer alone.

Memory bound: at most ``max_frames`` queued frames (``OUTBOX_FRAMES``,
default 256). Token frames of one message merge into the frame already
waiting at the tail, so a stream adds at most one queued frame however far
behind its client is; the other frames are control events (a few per
answer). A client is stuck when the outbox is full, or when one send has
been blocked for ``stall_seconds`` while more frames arrive: the outbox
then calls ``on_stuck`` (which closes the connection) and drops what it
holds, rather than buffering further.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio

from ..events import TokenFrame

__all__ = ["Outbox"]


class Outbox:
    def __init__(
        self,
        connection_id: str,
        max_frames: int = 256,
        stall_seconds: float = 30.0,
        on_stuck: Callable[[], None] = lambda: None,
    ) -> None:
        self.connection_id = connection_id
        self.max_frames = max_frames
        self.stall_seconds = stall_seconds
        self.merged = 0  # token frames folded into a waiting one, for benchmarks
        self.stuck = False
        self.sending_since: float | None = None  # set by the writer around each send
        self._on_stuck = on_stuck
        self._frames: deque[str | TokenFrame] = deque()
        self._waiting = trio.lowlevel.ParkingLot()
        self._closed = False

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: object) -> None:
        """Queue ``frame`` (an ``events.Frame``, ``TokenFrame`` or text); never blocks."""
        if self._closed:
            return
        frames = self._frames
        if isinstance(frame, TokenFrame):
            tail = frames[-1] if frames else None
            if isinstance(tail, TokenFrame) and tail.message_id == frame.message_id:
                frames[-1] = tail.merged(frame)
                self.merged += 1
                return
            item: str | TokenFrame = frame
        elif isinstance(frame, str):
            item = frame
        else:
            text = frame.text_for(self.connection_id)  # type: ignore[attr-defined]
            if text is None:
                return
            item = text
        if len(frames) >= self.max_frames or (
            self.sending_since is not None
            and trio.current_time() - self.sending_since > self.stall_seconds
        ):
            self._give_up()
            return
        frames.append(item)
        if self._waiting:
            self._waiting.unpark()

    def _give_up(self) -> None:
        self.stuck = True
        self._closed = True
        self._frames.clear()
        self._waiting.unpark_all()
        self._on_stuck()

    def close(self) -> None:
        """No more frames will be accepted; the writer drains what is queued."""
        self._closed = True
        self._waiting.unpark_all()

    async def get(self) -> str | None:
        """The next frame's text, waiting for one; None once closed and drained."""
        while not self._frames:
            if self._closed:
                return None
            await self._waiting.park()
        item = self._frames.popleft()
        return item if isinstance(item, str) else item.text
