"""A small PiChat client on trio-websocket, for tests, benchmarks and scripts.

``open_client(url, token)`` connects and yields a ``Client`` with ``request``
(send an action), ``receive`` (the next frame as a dict) and ``expect``
(frames until one with the wanted action).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import msgspec
import trio
from trio_websocket import WebSocketConnection, open_websocket_url
from wsproto.utilities import LocalProtocolError

__all__ = ["Client", "open_client"]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class Client:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def request(self, action: str, payload: Any = None, request_id: str | None = None) -> str:
        """Send an action; returns its request_id (generated when not given)."""
        request_id = request_id or f"r-{next(self._ids)}"
        frame: dict[str, Any] = {"action": action, "request_id": request_id}
        if payload is not None:
            frame["payload"] = payload
        await self.ws.send_message(_encode(frame).decode())
        return request_id

    async def send_raw(self, data: str | bytes) -> None:
        await self.ws.send_message(data)

    async def receive(self) -> dict[str, Any]:
        message = await self.ws.get_message()
        frame: dict[str, Any] = _decode(message)
        return frame

    async def expect(self, action: str, skip: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Frames until one with ``action``; others are dropped (only ``skip`` ones if given)."""
        while True:
            frame = await self.receive()
            if frame["action"] == action:
                return frame
            if skip is not None and frame["action"] not in skip:
                raise AssertionError(f"expected {action}, got {frame}")

    async def call(self, action: str, payload: Any = None) -> dict[str, Any]:
        """Send and wait for the reply (or error) carrying the same request_id."""
        request_id = await self.request(action, payload)
        while True:
            frame = await self.receive()
            if frame.get("request_id") == request_id:
                return frame


@asynccontextmanager
async def open_client(
    url: str, token: str | None, *, use_header: bool = False, **options: Any
) -> AsyncIterator[Client]:
    """``url`` is the server's ws://host:port; the token goes in the query or a header."""
    target = url.rstrip("/") + "/ws"
    headers: list[tuple[bytes, bytes]] = []
    if token is not None:
        if use_header:
            headers.append((b"Authorization", f"Bearer {token}".encode()))
        else:
            target += f"?token={quote(token)}"
    options.setdefault("max_message_size", 64 * 1024 * 1024)
    try:
        async with open_websocket_url(target, extra_headers=headers, **options) as ws:
            try:
                yield Client(ws)
                with trio.move_on_after(1):
                    await ws.aclose()
            finally:
                # trio-websocket leaves its socket open when the server closes first
                # (its reader stops on the server's TCP close without closing its own).
                stream = getattr(ws, "_stream", None)
                if stream is not None:
                    with trio.CancelScope(shield=True):
                        await stream.aclose()
    except LocalProtocolError as error:
        if not _pong_while_closing(error):
            raise


def _pong_while_closing(error: LocalProtocolError) -> bool:
    """trio-websocket (0.12) answers a ping that arrives after its own close frame went
    out, which wsproto refuses; the server may ping until it reads that close, so the
    error only says that the close crossed a ping (python-trio/trio-websocket#184)."""
    text = str(error)
    return "Pong" in text and "LOCAL_CLOSING" in text
