"""The public ASGI path: a ``FrameSink`` that uses only ASGI ``send`` events.

Every frame is a ``websocket.send`` message and a close is
``websocket.close``: nothing here knows which server runs the app. ASGI has
no ping message, so the server pings by itself (``app_pings`` False; for
hypercorn, ``websocket_ping_interval``) and ``ping`` does nothing. Nothing is
sent in the producer's step either (``try_send`` is always False): the
connection's writer sends every frame, and the server's ``send`` waits while
the peer's socket is full, which is the backpressure.

It serves wherever the fast path (``hypercorn_fast``) does not: another
hypercorn release, TLS terminated by hypercorn, ``FRAME_SINK=public``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..protocol.wire import Texts

__all__ = ["AsgiSink", "send_by_asgi"]

Send = Callable[[dict[str, Any]], Awaitable[None]]


async def send_by_asgi(send: Send, texts: Texts) -> None:
    """``texts``' frame (or frames, in order) through ASGI's ``send``, one message each."""
    for text in (texts,) if isinstance(texts, str) else texts:
        await send({"type": "websocket.send", "text": text})


class AsgiSink:
    """A WebSocket's frames through the ASGI ``send`` it was accepted with."""

    __slots__ = ("_closed", "_send")

    app_pings = False
    owed = False

    def __init__(self, send: Send) -> None:
        self._send = send
        self._closed = False  # after our close, ASGI allows no more sends: they are dropped

    def try_send(self, texts: Texts) -> bool:
        return False  # ASGI's send is a coroutine: there is no sending in this step

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send(self, texts: Texts) -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        await send_by_asgi(self._send, texts)

    async def ping(self) -> None:
        await trio.lowlevel.checkpoint()  # the server pings by itself

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        await self._send({"type": "websocket.close", "code": code, "reason": reason})
