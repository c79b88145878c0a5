"""A connection's outbox: bounded, merging, drained by the writer alone.

Memory bound: at most ``max_frames`` queued frames (``OUTBOX_FRAMES``,
default 256). Token frames of one message merge into the one frame of that
message still waiting, wherever it sits in the queue, so a stream adds at
most one queued frame however far behind its client is, and however many
other streams interleave with it; the other frames are control events (a
few per answer). The text a merged frame holds is bounded by its answer
(``AI_MAX_TOKENS``, or the model's own limit). Merged tokens keep their
order within their message, which is all the protocol orders (a
message's tokens concatenate to its content): a token may go out ahead of
a frame of another message queued after its own. A client is stuck when
the outbox is full, or when one send has
been blocked for ``stall_seconds`` while more frames arrive: the outbox
then calls ``on_stuck`` (which closes the connection) and drops what it
holds, rather than buffering further.

When nothing is queued and nothing is being sent, a frame is first offered
to the connection's sink (``FrameSink.try_send``): sent in the producer's
step, it never reaches the queue or the writer. When the sink is left
owing the rest of a frame, a ``FLUSH`` is queued for the writer, ahead of
everything after it. A token frame that
follows the last one of its message within ``MERGE_SECONDS`` is queued
instead, for the writer, and what follows merges into it: tokens that come
in a burst (read together from upstream, or late because the server is
busy) go out as one frame, not one system call each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio

from ..protocol.wire import Texts, TokenFrame
from .pacer import FramePacer
from .sink import FrameSink
from .wakeup import Wakeup

__all__ = ["FLUSH", "MERGE_SECONDS", "PING", "Outbox"]

MERGE_SECONDS = 0.002
"""Token frames of one message closer together than this merge (see above)."""


class _Pending:
    """A message's token frame waiting in the queue, and the tokens merged into it since."""

    __slots__ = ("message_id", "prefix", "tokens")

    def __init__(self, frame: TokenFrame) -> None:
        self.prefix = frame.prefix
        self.message_id = frame.message_id
        self.tokens = [frame.token]

    @property
    def text(self) -> str:
        tokens = self.tokens
        token = tokens[0] if len(tokens) == 1 else "".join(tokens)
        return TokenFrame(self.prefix, self.message_id, token).text


class _Ping:
    """The outbox item that makes the writer send a WebSocket ping."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PING"


PING = _Ping()


class _Flush:
    """The outbox item that makes the writer finish a frame the sink began."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FLUSH"


FLUSH = _Flush()


class Outbox:
    """Frames waiting for one connection's writer.

    Kept small for the thousands of connections that sit idle: the queue is
    made on the first frame, and the writer waits in a ``Wakeup`` (why not
    a memory channel: ``wakeup.py``), made on its first wait.
    """

    __slots__ = (
        "_closed",
        "_frames",
        "_last_message",
        "_on_frame",
        "_on_stuck",
        "_pacer",
        "_pending",
        "_waiter",
        "connection_id",
        "dropped",
        "last_sent",
        "max_frames",
        "merged",
        "sending_since",
        "sink",
        "stall_seconds",
        "streaming",
        "stuck",
    )

    def __init__(
        self,
        connection_id: str,
        max_frames: int = 256,
        stall_seconds: float = 30.0,
        on_stuck: Callable[[], None] = lambda: None,
        on_frame: Callable[[], None] = lambda: None,
        pacer: FramePacer | None = None,
    ) -> None:
        self.connection_id = connection_id
        self.max_frames = max_frames
        self.stall_seconds = stall_seconds
        self.merged = 0  # token frames folded into a waiting one, for benchmarks
        self.stuck = False
        self.dropped = 0  # frames thrown away when the client was given up on
        self.streaming = False  # the last frame taken was a token frame
        self.sending_since: float | None = None  # set by the writer around each send
        self.last_sent = -float("inf")  # when a token frame was last sent (begun)
        self._pacer = pacer
        self._last_message: str | None = None  # of the last token frame taken
        self._on_stuck = on_stuck
        self._on_frame = on_frame  # a frame arrived and no writer waits: start one
        self._frames: deque[Texts | _Pending | _Ping | _Flush] | None = None
        self._pending: dict[str, _Pending] | None = None  # by message id: its queued frame
        self._waiter: Wakeup | None = None
        self._closed = False
        self.sink: FrameSink | None = None
        """Offered a frame first when nothing waits; see the module docstring."""

    def __len__(self) -> int:
        return len(self._frames) if self._frames else 0

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, frame: object) -> None:
        """Queue ``frame`` (an ``events.Frame``, ``TokenFrame`` or ``Texts``); never blocks."""
        if self._closed:
            return
        frames = self._frames
        if frames is None:
            frames = self._frames = deque()
        if isinstance(frame, TokenFrame):
            if self._pending and self._merge(frame):
                return
            item: Texts | TokenFrame | _Ping = frame
        elif isinstance(frame, str | tuple):
            item = frame
        elif frame is PING:
            item = PING
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
        sink = self.sink
        if sink is not None and not frames and self.sending_since is None:
            if type(item) is TokenFrame:
                now = trio.current_time()
                if now - self.last_sent < MERGE_SECONDS and item.message_id == self._last_message:
                    sent = False  # a burst: the writer sends it, merged with what follows
                else:
                    sent = sink.try_send(item.text)
                    self.last_sent = now
                    self._last_message = item.message_id
                self.streaming = True
            elif isinstance(item, str | tuple):
                sent = sink.try_send(item)
                self.streaming = False
            else:
                sent = False
            if sent:
                if sink.owed:
                    frames.append(FLUSH)  # the rest of the frame just begun: it goes first
                    self._wake()
                return
        if type(item) is TokenFrame:
            queued = _Pending(item)
            if self._pending is None:
                self._pending = {}
            self._pending[item.message_id] = queued
            frames.append(queued)
        else:
            frames.append(item)  # type: ignore[arg-type]  # Texts or PING
        pacer = self._pacer
        if (
            pacer is not None
            and self._waiter is not None
            and self._waiter.waiting
            and type(item) is TokenFrame
            and item.message_id == self._last_message
            and trio.current_time() - self.last_sent < pacer.interval
        ):
            pacer.hold(self)  # merge what follows until the next tick
            return
        self._wake()

    def _merge(self, frame: TokenFrame) -> bool:
        """Fold ``frame`` into its message's frame waiting in the queue, if there is one."""
        assert self._pending is not None
        waiting = self._pending.get(frame.message_id)
        if waiting is None:
            return False
        waiting.tokens.append(frame.token)
        self.merged += 1
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and waiter.waiting:
            waiter.wake()
        else:
            self._on_frame()

    def nudge(self) -> None:
        """Wake a waiting writer so it can see whether it is still needed."""
        if self._waiter is not None:
            self._waiter.wake()

    def _give_up(self) -> None:
        self.stuck = True
        self._closed = True
        if self._frames:
            self.dropped = len(self._frames)
            self._frames.clear()
        if self._pending:
            self._pending.clear()
        self._wake()
        self._on_stuck()

    def close(self) -> None:
        """No more frames will be accepted; the writer drains what is queued."""
        if not self._closed:
            self._closed = True
            self._wake()

    def pop(self) -> Texts | _Ping | _Flush | None:
        """The next frame's text (or frames' texts, or ``PING``, or ``FLUSH`` for the
        rest of a frame the sink began), or None when nothing is queued."""
        if not self._frames:
            return None
        item = self._frames.popleft()
        if isinstance(item, str | tuple | _Ping):
            self.streaming = False
            return item
        if isinstance(item, _Flush):
            return item
        self.streaming = True
        self._last_message = item.message_id
        pending = self._pending
        assert pending is not None
        del pending[item.message_id]
        return item.text

    async def wait(self) -> None:
        """Until a frame is queued or the outbox is closed (one waiter at a time)."""
        if self._frames or self._closed:
            await trio.lowlevel.checkpoint()
            return
        if self._waiter is None:
            self._waiter = Wakeup()
        await self._waiter.wait()

    async def get(self) -> Texts | _Ping | _Flush | None:
        """The next frame's text (or ``PING``), waiting for one; None once closed and drained."""
        while True:
            text = self.pop()
            if text is not None:
                return text
            if self._closed:
                return None
            await self.wait()
