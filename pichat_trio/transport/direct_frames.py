"""Text frames written straight to hypercorn's socket, not through ASGI.

Every token frame through ASGI's ``send`` costs hypercorn's whole path: the
message dict, wsproto's framing (and per-message deflate when a browser
asked for it), a lock, a shielded cancel scope and trio's ``send_all``
with its trip through the scheduler. At 200 streams that path was a third
of the server core. A server-to-client text frame is two to ten bytes of
header and the UTF-8 text, so ``DirectFrames`` builds it and writes it to
the non-blocking socket at once: one system call, no task switch.

It writes only while nothing else can be mid-frame on the socket: the
WebSocket is open on both levels (hypercorn's ASGI state and wsproto's) and
hypercorn's send lock is free (``write_now``). A frame the socket does not
take at all (a full send buffer, a slow reader, an error) goes through
hypercorn's own send path, which waits under its lock and turns a broken
socket into a disconnect as before. When the socket takes only part of a
frame, the send lock stays held for the rest until ``send_rest`` has sent
it, so a frame is never interleaved with another (hypercorn's pongs and
close frames take the same lock).

The producer of a frame (a token arriving from upstream, a reply) calls
``write_now`` itself when nothing is queued before it, so the frame is
written in the producer's own step, with no writer task woken and no trip
through the scheduler at all; the connection's writer sends a rest it
leaves. A ``trio.Lock`` must be released by the task that took it, so
``for_send`` gives the connection a ``_SendLock`` in its place, which
hypercorn uses the same way (``async with``).

Unmasked, unfragmented and uncompressed frames are valid from a server
whatever extensions were negotiated (RFC 6455 5.1, RFC 7692 6: a message
may be sent without compression). ``for_send`` returns None where the
socket is not reachable this way (TLS in hypercorn itself, HTTP/2, another
server); then the ASGI path is used. This module is imported only on a
hypercorn release it was tested on (``hypercorn_support``).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.protocol.events import Data
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from hypercorn.trio.tcp_server import TCPServer
from wsproto.connection import ConnectionState

from ..events import Texts
from .frames import send_by_asgi, text_frame, text_frames

__all__ = ["DirectFrames", "send_by_asgi", "text_frame", "text_frames"]

Send = Callable[[dict[str, Any]], Awaitable[None]]

_CONNECTED = ASGIWebsocketState.CONNECTED
_OPEN = ConnectionState.OPEN


class _SendLock:
    """hypercorn's send lock, also holdable by one task and released by another:
    a frame begun by ``write_now`` keeps it until ``send_rest`` has sent the rest."""

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


class DirectFrames:
    """Sends one hypercorn WebSocket's text frames by a direct write when it can."""

    __slots__ = ("_asgi_send", "_lock", "_socket", "_stream", "_ws")

    def __init__(
        self, ws: WSStream, lock: _SendLock, stream: trio.SocketStream, asgi_send: Send
    ) -> None:
        self._ws = ws
        self._lock = lock
        self._stream = stream
        self._socket = stream.socket
        self._asgi_send = asgi_send

    @classmethod
    def for_send(cls, send: Send) -> DirectFrames | None:
        """For the ASGI ``send`` of a hypercorn WebSocket over plain TCP, else None."""
        ws = getattr(send, "__self__", None)
        if not isinstance(ws, WSStream):
            return None
        protocol = getattr(ws.send, "__self__", None)
        if not isinstance(protocol, H11Protocol):
            return None
        server = getattr(protocol.send, "__self__", None)
        if not isinstance(server, TCPServer):
            return None
        stream = getattr(server, "stream", None)
        lock = getattr(server, "send_lock", None)
        if not isinstance(stream, trio.SocketStream) or not isinstance(lock, trio.Lock):
            return None  # TLS terminated by hypercorn, or a layout we do not know
        if lock.locked() or lock.statistics().tasks_waiting:
            return None  # not at a moment it can be replaced
        ours = _SendLock()
        setattr(server, "send_lock", ours)  # noqa: B010 - it is typed as a trio.Lock
        return cls(ws, ours, stream, send)

    def write_now(self, text: Texts) -> bytes | None:
        """Write ``text``'s frame (or frames) now, without waiting, if nothing else is writing.

        None: nothing was written (the socket is busy, full, broken or the
        WebSocket is closing); send it with ``send_text`` in turn. Otherwise
        the part of the frame the socket did not take, usually ``b""``; when
        there is some, the send lock is held for it and ``send_rest`` must
        send it before any other frame.
        """
        if not self._open() or self._lock.locked():
            return None
        fd = self._socket.fileno()  # -1 once hypercorn closed the socket
        if fd < 0:
            return None
        data = text_frames(text)
        try:
            sent = os.write(fd, data)
        except OSError:  # full (BlockingIOError) or broken: the usual path decides
            return None
        if sent == len(data):
            return b""
        self._lock.hold()
        return data[sent:]

    async def send_rest(self, rest: bytes) -> None:
        """Send the rest of a frame ``write_now`` began, then free the send lock.

        Shielded, as hypercorn's own sends are: a frame is never left half
        written. A broken socket is left to hypercorn's reader to notice.
        """
        try:
            with trio.CancelScope(shield=True):
                await self._stream.send_all(rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self._lock.release()

    async def send_text(self, text: Texts) -> None:
        """Send ``text``'s frame (or frames): written at once if it can be
        (``write_now``), else through hypercorn's locked send, which waits for
        the socket."""
        if not self._open():
            # Closing or closed: hypercorn decides (it drops sends after close).
            await send_by_asgi(self._asgi_send, text)
            return
        rest = self.write_now(text)
        if rest is None:  # busy, full or broken: hypercorn's send waits, or sees the break
            ws = self._ws
            await ws.send(Data(stream_id=ws.stream_id, data=text_frames(text)))
        elif rest:
            await self.send_rest(rest)

    def _open(self) -> bool:
        """The WebSocket is open for hypercorn's ASGI state and for wsproto."""
        ws = self._ws
        return ws.state is _CONNECTED and not ws.closed and ws.connection.state is _OPEN
