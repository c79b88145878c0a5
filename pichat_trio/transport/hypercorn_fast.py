"""The fast path: a ``FrameSink`` written against hypercorn's internals, alone here.

Why it exists, measured (``bench/README.md``; ``bench/run.py --sink public``
measures the same scenarios without it):

- **Frames written straight to the socket.** Every token frame through
  ASGI's ``send`` costs hypercorn's whole path: the message dict, wsproto's
  framing (and per-message deflate when a browser asked for it), a lock, a
  shielded cancel scope and trio's ``send_all`` with its trip through the
  scheduler. At 200 streams that path was a third of the server core. A
  server-to-client text frame is two to ten bytes of header and the UTF-8
  text (``frames.text_frames``), so ``try_send`` writes it to the
  non-blocking socket in its producer's step: one system call, no task
  switch.
- **The app's pings.** hypercorn pings each WebSocket with a task per
  connection (3.6 KB per idle connection, ``heartbeat.py``); the app's one
  heartbeat task pings through the stream's ``_send_wsproto_event``.
- **Closes finished** (``closing.FinishingClose``, put in place here).

``try_send`` writes only while nothing else can be mid-frame on the socket:
the WebSocket is open on both levels (hypercorn's ASGI state and wsproto's)
and hypercorn's send lock is free. A frame the socket does not take at all
goes through hypercorn's own send path (``send``), which waits under its
lock and turns a broken socket into a disconnect. When the socket takes
only part of a frame, the send lock stays held for the rest until ``flush``
has sent it, so a frame is never interleaved with another (hypercorn's
pongs and close frames take the same lock). A ``trio.Lock`` must be
released by the task that took it, so hypercorn's is replaced by a
``_SendLock``, which hypercorn uses the same way (``async with``).
Unmasked, unfragmented, uncompressed frames are valid from a server
whatever extensions were negotiated (RFC 6455 5.1, RFC 7692 6).

Guards: ``fast_path`` checks at start-up that the installed hypercorn is a
release series in ``TESTED`` (the bounds in ``pyproject.toml``; CI runs the
sink suite on the lowest and the newest) and that the internals used here
import and exist; otherwise it logs one warning line and the server keeps
the public path (``asgi_sink.AsgiSink``, hypercorn's own pings). Per
connection, ``sink_for`` checks the stream's layout before using it; where
the socket is not reachable this way (TLS in hypercorn itself, HTTP/2) the
frames go through ASGI's ``send`` and only the pings and closes are ours.
No other module imports hypercorn's protocol or worker internals
(``tests/unit/test_layering.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import trio
from wsproto.connection import Connection as WSProtoConnection
from wsproto.connection import ConnectionState
from wsproto.events import Ping

from ..protocol.wire import Texts
from .asgi_sink import AsgiSink, send_by_asgi
from .closing import FinishingClose
from .frames import text_frames
from .sink import FrameSink

try:
    from hypercorn.protocol.events import Data
    from hypercorn.protocol.h11 import H11Protocol
    from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
    from hypercorn.trio.tcp_server import TCPServer
except ImportError:  # laid out otherwise: ``fast_path`` says so and the public path serves
    _IMPORTED = False
else:
    _IMPORTED = True
    _CONNECTED = ASGIWebsocketState.CONNECTED

__all__ = ["TESTED", "FastSink", "fast_path", "installed_version", "sink_for"]

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]

TESTED = ("0.17", "0.18")
"""hypercorn release series (major.minor) the fast path was tested on."""

_OPEN = ConnectionState.OPEN


def installed_version() -> str:
    try:
        return version("hypercorn")
    except PackageNotFoundError:  # run from a source tree without metadata
        return "unknown"


def fast_path(hypercorn_version: str | None = None) -> bool:
    """Whether the fast path may serve on ``hypercorn_version`` (default: the installed one).

    False, with one warning line, on a release it was not tested on or
    whose internals are not where it expects them.
    """
    found = installed_version() if hypercorn_version is None else hypercorn_version
    series = ".".join(found.split(".")[:2])
    if series not in TESTED:
        problem = f"hypercorn {found} is not a release the fast path was tested on"
    elif not _IMPORTED or not callable(getattr(WSStream, "_send_wsproto_event", None)):
        problem = f"hypercorn {found} lacks the internals the fast path uses"
    else:
        return True
    log.warning(
        "%s (%s): frames go through ASGI and hypercorn sends the pings", problem, ", ".join(TESTED)
    )
    return False


def sink_for(send: Send, on_close: Callable[[], None]) -> FrameSink:
    """The sink of the accepted WebSocket behind ASGI ``send``, on a tested hypercorn.

    ``on_close`` is called when a close frame the server started goes out.
    """
    ws = getattr(send, "__self__", None)
    if not (
        isinstance(ws, WSStream)
        and isinstance(getattr(ws, "state", None), ASGIWebsocketState)
        and isinstance(getattr(ws, "closed", None), bool)
        and callable(getattr(ws, "send", None))
        and type(getattr(ws, "connection", None)) is WSProtoConnection
    ):
        # hypercorn's own pings are off (``fast_path``): say so, loudly
        log.error("cannot ping this WebSocket: its send is not hypercorn's stream")
        return AsgiSink(send)
    inner = ws.connection
    ws.connection = FinishingClose(inner, on_close)  # type: ignore[assignment]
    return FastSink(ws, send, _direct_socket(ws))


def _direct_socket(ws: WSStream) -> tuple[_SendLock, trio.SocketStream] | None:
    """hypercorn's socket under ``ws`` and the lock now guarding it, or None
    where it is not a plain TCP socket that can be written directly."""
    protocol = getattr(ws.send, "__self__", None)
    if not isinstance(protocol, H11Protocol):
        return None  # HTTP/2, or a layout we do not know
    server = getattr(protocol.send, "__self__", None)
    if not isinstance(server, TCPServer):
        return None
    stream = getattr(server, "stream", None)
    lock = getattr(server, "send_lock", None)
    if not isinstance(stream, trio.SocketStream) or not isinstance(lock, trio.Lock):
        return None  # TLS terminated by hypercorn
    if lock.locked() or lock.statistics().tasks_waiting:
        return None  # not at a moment it can be replaced
    ours = _SendLock()
    setattr(server, "send_lock", ours)  # noqa: B010 - it is typed as a trio.Lock
    return ours, stream


class _SendLock:
    """hypercorn's send lock, also holdable by one task and released by another:
    a frame begun by ``try_send`` keeps it until ``flush`` has sent the rest."""

    __slots__ = ("_free",)

    def __init__(self) -> None:
        self._free = trio.Semaphore(1)

    def locked(self) -> bool:
        return self._free.value == 0

    def hold(self) -> None:
        self._free.acquire_nowait()

    def release(self) -> None:
        self._free.release()

    async def __aenter__(self) -> None:
        await self._free.acquire()  # taken before its checkpoint, as a trio.Lock is

    async def __aexit__(self, *exc_info: object) -> None:
        self._free.release()


class FastSink:
    """A hypercorn WebSocket's frames, written directly to its socket when it can."""

    __slots__ = ("_asgi_send", "_closed", "_lock", "_rest", "_socket", "_stream", "_ws")

    app_pings = True

    def __init__(
        self,
        ws: WSStream,
        asgi_send: Send,
        direct: tuple[_SendLock, trio.SocketStream] | None,
    ) -> None:
        self._ws = ws
        self._asgi_send = asgi_send
        self._lock: _SendLock | None = None
        self._stream: trio.SocketStream | None = None
        self._socket: trio.socket.SocketType | None = None
        if direct is not None:
            self._lock, self._stream = direct
            self._socket = self._stream.socket
        self._rest: bytes | None = None  # what the socket left of a frame begun by try_send
        self._closed = False  # after our close, sends are dropped (ASGI allows none)

    @property
    def owed(self) -> bool:
        return self._rest is not None

    def try_send(self, texts: Texts) -> bool:
        lock, sock = self._lock, self._socket
        if lock is None or sock is None or self._rest is not None or lock.locked():
            return False
        if not self._open():
            return False
        fd = sock.fileno()  # -1 once hypercorn closed the socket
        if fd < 0:
            return False
        data = text_frames(texts)
        try:
            sent = os.write(fd, data)
        except OSError:  # full (BlockingIOError) or broken: ``send`` decides
            return False
        if sent < len(data):
            lock.hold()
            self._rest = data[sent:]
        return True

    async def flush(self) -> None:
        """Shielded, as hypercorn's own sends are: a frame is never left half
        written. A broken socket is left to hypercorn's reader to notice."""
        rest, self._rest = self._rest, None
        if rest is None or self._lock is None or self._stream is None:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.CancelScope(shield=True):
                await self._stream.send_all(rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._lock.release()

    async def send(self, texts: Texts) -> None:
        if self._rest is not None:
            await self.flush()
        if self._closed:
            await trio.lowlevel.checkpoint()
        elif self._lock is None or not self._open():
            # No direct socket, or closing: hypercorn decides (it drops sends after close).
            await send_by_asgi(self._asgi_send, texts)
        elif not self.try_send(texts):  # busy, full or broken: hypercorn's send waits
            ws = self._ws
            await ws.send(Data(stream_id=ws.stream_id, data=text_frames(texts)))
        elif self._rest is not None:
            await self.flush()

    async def ping(self) -> None:
        ws = self._ws
        if not ws.closed:  # hypercorn's own sends check this; this one bypasses them
            await ws._send_wsproto_event(Ping())
        else:
            await trio.lowlevel.checkpoint()

    async def close(self, code: int, reason: str = "") -> None:
        if self._rest is not None:
            await self.flush()
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        await self._asgi_send({"type": "websocket.close", "code": code, "reason": reason})

    def _open(self) -> bool:
        """The WebSocket is open for hypercorn's ASGI state and for wsproto."""
        ws = self._ws
        try:
            return ws.state is _CONNECTED and not ws.closed and ws.connection.state is _OPEN
        except AttributeError:  # checked in ``sink_for``; never a crash if that changes
            return False
