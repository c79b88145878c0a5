"""One WebSocket connection: a nursery with a reader and, while there is output, a writer.

The ASGI task itself is the reader: it turns frames into requests for the
router (``dispatch/``) and is the only one that sees a disconnect (hypercorn drops sends
after close), so when it returns it cancels the nursery, and with it every
answer and speech call this connection started. The writer is the only
sender; it drains the outbox. It runs only while there is something to
send: the first frame into an empty outbox starts it, and it ends once the
outbox is empty, no stream is flowing to this connection and none of its
own requests is running. An idle connection (most of them, on a server
with thousands of devices) so holds one task, the reader, instead of two;
a streaming one keeps its writer between tokens. Frames go out through the
connection's ``FrameSink`` (``sink.py``), which may send a frame in its
producer's step when nothing is queued, so a client that keeps up never
needs the writer at all. Keepalive pings come from the one heartbeat task
(``heartbeat.py``) through the writer, where the sink leaves pings to the
app; the dead-peer deadline is the server's ``read_timeout``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..dispatch.router import Router
from ..errors import Busy, RateLimited, UpstreamUnavailable
from ..models import User
from ..ports import Delivery, Hub
from ..protocol.encode import frame_for_event
from ..protocol.errors import error_frame, error_frame_for
from ..protocol.wire import Texts
from .outbox import FLUSH, PING, Outbox
from .pacer import FramePacer
from .rate import FrameBudget, TokenBucket
from .sink import FrameSink

__all__ = ["Connection", "ConnectionLimits"]

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]


class ConnectionLimits:
    __slots__ = (
        "burst",
        "close_seconds",
        "grace",
        "max_frames",
        "max_tasks",
        "pacer",
        "rate",
        "stall_seconds",
    )

    def __init__(
        self,
        max_tasks: int = 4,
        max_frames: int = 256,
        stall_seconds: float = 30.0,
        rate: float = 30.0,
        burst: float = 60.0,
        pacer: FramePacer | None = None,
        close_seconds: float = 2.0,
        grace: float = 10.0,
    ) -> None:
        self.max_tasks = max_tasks
        self.close_seconds = close_seconds
        """After a close frame of ours (or hypercorn's), how long the peer has to answer."""
        self.pacer = pacer
        self.max_frames = max_frames
        self.stall_seconds = stall_seconds
        self.rate = rate
        self.burst = burst
        self.grace = grace
        """How long a client may go on sending past its rate before it is closed (1008)."""


class Connection:
    """Owns everything one client's socket started; implements ``Peer`` and ``Subscriber``."""

    __slots__ = (
        "_accepting",
        "_budget",
        "_close_code",
        "_close_deadline",
        "_hub",
        "_limits",
        "_nursery",
        "_outbox",
        "_router",
        "_sink",
        "_tasks",
        "_user_bucket",
        "_writing",
        "id",
        "user",
    )

    def __init__(
        self,
        user: User,
        router: Router,
        hub: Hub,
        limits: ConnectionLimits,
        accepting: Callable[[], bool] = lambda: True,
        user_bucket: TokenBucket | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.user = user
        self._router = router
        self._hub = hub
        self._limits = limits
        self._accepting = accepting
        self._outbox = Outbox(
            self.id,
            limits.max_frames,
            limits.stall_seconds,
            self._stuck,
            self._start_writer,
            limits.pacer,
        )
        self._budget = FrameBudget(limits.rate, limits.burst, limits.grace)
        self._user_bucket = user_bucket  # shared by the user's connections (user_limits.py)
        self._nursery: trio.Nursery | None = None
        self._sink: FrameSink | None = None
        self._writing = False
        self._tasks = 0
        self._close_code: int | None = None
        self._close_deadline = float("inf")  # set by ``closing``

    # ------------------------------------------------- Peer / Subscriber

    def deliver(self, delivery: Delivery) -> None:
        """An event from the hub, as its frame: encoded by the first of the user's
        connections to take it, shared by the others (``protocol.encode.frame_of``,
        inlined: this runs once per connection per token)."""
        frame = delivery.encoded
        if frame is None:
            frame = delivery.encoded = frame_for_event(delivery.event)
        self._outbox.put(frame)

    def send(self, text: Texts) -> None:
        self._outbox.put(text)

    def ping(self) -> None:
        """Queue a keepalive ping (the heartbeat's call); a no-op where the server pings."""
        if self._sink is not None and self._sink.app_pings:
            self._outbox.put(PING)

    def check_capacity(self) -> None:
        """Raise what ``spawn`` would raise now, before any work is done."""
        if not self._accepting():
            raise UpstreamUnavailable("the server is restarting; try again in a moment")
        if self._tasks >= self._limits.max_tasks:
            raise Busy(
                f"at most {self._limits.max_tasks} answers and speech calls at once "
                "on one connection"
            )

    def spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self.check_capacity()
        assert self._nursery is not None
        self._tasks += 1
        self._nursery.start_soon(self._guarded, fn, args)

    async def _guarded(self, fn: Callable[..., Awaitable[None]], args: tuple[Any, ...]) -> None:
        try:
            await fn(*args)
        except Exception:
            log.exception("connection %s: background work failed", self.id)
            self.send(error_frame("internal_error", "the server failed to finish a request"))
        finally:
            self._tasks -= 1
            if not self._tasks:
                self._outbox.nudge()  # a writer kept for this work may now end

    @property
    def busy_tasks(self) -> int:
        return self._tasks

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    # ---------------------------------------------------------- running

    async def run(self, receive: Receive, sink: FrameSink) -> None:
        """Serve until the peer goes, the server closes us, or we give up on the peer.

        Frames go to ``sink``; it is offered each frame in its producer's
        step unless frame pacing is on. Where it leaves pings to the app,
        the heartbeat's pings go through it (and one at once).
        """
        self._sink = sink
        if self._limits.pacer is None:
            self._outbox.sink = sink
        self.ping()
        async with self._hub.subscribe(self.user.id, self), trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.cancel_scope.deadline = self._close_deadline  # a close before we ran
            try:
                if len(self._outbox) or self._outbox.closed:
                    self._start_writer()
                await self._read(receive)
                nursery.cancel_scope.cancel()
            finally:
                # The nursery takes no new tasks from here: frames (a fan-out,
                # a heartbeat ping) that still arrive start no writer.
                self._nursery = None

    def close(self, code: int = 1001) -> None:
        """Send what is queued, then a close frame with ``code``."""
        if self._close_code is None:
            self._close_code = code
            self._outbox.close()

    def closing(self) -> None:
        """A close frame the server started went out (ours, or hypercorn's 1009):
        the peer has ``close_seconds`` to answer, then the connection is dropped."""
        deadline = trio.current_time() + self._limits.close_seconds
        self._close_deadline = min(self._close_deadline, deadline)
        if self._nursery is not None:
            self._nursery.cancel_scope.deadline = self._close_deadline

    def _stuck(self) -> None:
        log.warning("connection %s of user %s stopped reading; closing it", self.id, self.user.name)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _read(self, receive: Receive) -> None:
        handle = self._router.handle
        budget = self._budget
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                return
            if kind != "websocket.receive" or self._close_code is not None:
                continue  # after our goodbye, what the peer sends is not handled
            text = message.get("text")
            if text is None and self._router.voice.takes_audio(self):
                # A voice session's microphone: paced by its own audio budget.
                self._router.voice.audio(self, message.get("bytes") or b"")
                continue
            now = trio.current_time()
            verdict = budget.take(now)  # every frame, binary ones too
            if verdict != FrameBudget.ADMIT:
                self._over_budget(verdict, text)
                continue
            if self._user_bucket is not None:
                wait = self._user_bucket.take(now)
                if wait > 0:
                    self._refuse(text, wait)
                    continue
            if text is None:
                self.send(
                    error_frame("unsupported_frame", "binary frames are not supported; send JSON")
                )
                continue
            await handle(self, text)

    def _refuse(self, text: str | None, wait: float) -> None:
        """``rate_limited`` for a frame not handled, with its request's id where it has one."""
        error = RateLimited("too many requests; slow down", int(wait * 1000) + 1)
        if text is None:
            self.send(error_frame_for(error, None, None))
        else:
            self._router.refuse(self, text, error)

    def _over_budget(self, verdict: int, text: str | None) -> None:
        if verdict == FrameBudget.REFUSE:
            self._refuse(text, self._budget.retry_after)
        elif verdict == FrameBudget.CLOSE:
            log.warning(
                "connection %s of user %s kept sending past its rate; closing it",
                self.id,
                self.user.name,
            )
            self.close(1008)

    def _start_writer(self) -> None:
        """A frame arrived and no writer is waiting for it."""
        if not self._writing and self._nursery is not None:
            self._writing = True
            self._nursery.start_soon(self._write)

    async def _write(self) -> None:
        outbox = self._outbox
        sink = self._sink
        assert sink is not None
        try:
            while True:
                text = outbox.pop()
                if text is None:
                    if outbox.closed:
                        break
                    if outbox.streaming or self._tasks:
                        await outbox.wait()  # more is coming soon: keep this task
                        continue
                    return  # idle: the next frame starts a new writer
                outbox.sending_since = now = trio.current_time()
                if isinstance(text, str | tuple):
                    if outbox.streaming:  # pacing counts token frames only
                        outbox.last_sent = now
                    await sink.send(text)
                elif text is FLUSH:  # the rest of a frame the sink began
                    await sink.flush()
                else:  # PING
                    await sink.ping()
                outbox.sending_since = None
        finally:
            self._writing = False
        if self._close_code is not None and not outbox.stuck:
            await sink.close(self._close_code)
            self.closing()
