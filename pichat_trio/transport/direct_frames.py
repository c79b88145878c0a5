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
hypercorn's send lock is free. Whatever the socket does not take at once
(a full send buffer, a slow reader, an error) goes on through hypercorn's
own send path, which waits under its lock and turns a broken socket into a
disconnect as before. A frame is never interleaved with another: the rest
of a partly written frame takes the lock before any other task can run.

Unmasked, unfragmented and uncompressed frames are valid from a server
whatever extensions were negotiated (RFC 6455 5.1, RFC 7692 6: a message
may be sent without compression). ``for_send`` returns None where the
socket is not reachable this way (TLS in hypercorn itself, HTTP/2, another
server); then the ASGI path is used.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.protocol.events import Data
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from hypercorn.trio.tcp_server import TCPServer
from wsproto.connection import ConnectionState

__all__ = ["DirectFrames", "text_frame"]

Send = Callable[[dict[str, Any]], Awaitable[None]]

_CONNECTED = ASGIWebsocketState.CONNECTED
_OPEN = ConnectionState.OPEN
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")
_FIN_TEXT = 0x81  # FIN bit and opcode 1: a whole text message


def text_frame(text: str) -> bytes:
    """One unmasked WebSocket text frame carrying ``text``."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return _SHORT.pack(_FIN_TEXT, size) + payload
    if size < 65536:
        return _MEDIUM.pack(_FIN_TEXT, 126, size) + payload
    return _LONG.pack(_FIN_TEXT, 127, size) + payload


class DirectFrames:
    """Sends one hypercorn WebSocket's text frames by a direct write when it can."""

    __slots__ = ("_asgi_send", "_lock", "_socket", "_ws")

    def __init__(
        self, ws: WSStream, lock: trio.Lock, sock: trio.socket.SocketType, asgi_send: Send
    ) -> None:
        self._ws = ws
        self._lock = lock
        self._socket = sock
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
        return cls(ws, lock, stream.socket, send)

    async def send_text(self, text: str) -> None:
        ws = self._ws
        if ws.state is not _CONNECTED or ws.closed or ws.connection.state is not _OPEN:
            # Closing or closed: hypercorn decides (it drops sends after close).
            await self._asgi_send({"type": "websocket.send", "text": text})
            return
        data = text_frame(text)
        if not self._lock.locked():
            fd = self._socket.fileno()  # -1 once hypercorn closed the socket
            if fd >= 0:
                try:
                    sent = os.write(fd, data)
                except OSError:  # full (BlockingIOError) or broken: hypercorn's path decides
                    sent = 0
                if sent == len(data):
                    return
                data = data[sent:]
        # Nothing has yielded since the lock was seen free, so hypercorn's
        # send takes it before any other task can write: the frame stays whole.
        await ws.send(Data(stream_id=ws.stream_id, data=data))
