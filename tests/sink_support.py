"""``open_sink_server``: a real hypercorn on loopback handing each WebSocket's sink to a test.

The suite's ``sink_server`` fixture (``tests/sink/conftest.py``) runs it for
both sinks: ``public`` (``AsgiSink``) and ``fast`` (``hypercorn_fast.sink_for``).
hypercorn pings by itself only when asked (``server_pings``), and only where
the sink leaves pings to the server, as the server configures it; elsewhere
no ping crosses a client's close (trio-websocket's reader fails on a ping
that arrives while it closes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import WebSocketConnection, wrap_client_stream

from pichat_trio.transport import hypercorn_fast
from pichat_trio.transport.asgi_sink import AsgiSink
from pichat_trio.transport.sink import FrameSink

SINKS = ["public", "fast"]
MAX_MESSAGE = 1024 * 1024  # what the server reads from a client, as MAX_FRAME_BYTES
SERVER_PINGS = 0.05  # seconds: hypercorn's ping interval where the sink leaves pings to it


class Accepted:
    """One accepted WebSocket: its sink, what its peer sent, and when it went."""

    def __init__(self, sink: FrameSink) -> None:
        self.sink = sink
        self.received: list[str] = []
        self.disconnected = trio.Event()
        self.closes_started = 0  # close frames the server started (``on_close``)


class SinkServer:
    """An ASGI app under hypercorn that accepts every WebSocket and keeps reading it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.url = ""
        self.streams: list[trio.SocketStream] = []  # the clients', closed at the end
        self._accepted_send, self._accepted = trio.open_memory_channel[Accepted](16)

    async def accepted(self) -> Accepted:
        with trio.fail_after(10):  # a hang guard
            return await self._accepted.receive()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        holder: list[Accepted] = []

        def on_close() -> None:
            holder[0].closes_started += 1

        sink = hypercorn_fast.sink_for(send, on_close) if self.kind == "fast" else AsgiSink(send)
        accepted = Accepted(sink)
        holder.append(accepted)
        await self._accepted_send.send(accepted)
        while (message := await receive())["type"] == "websocket.receive":
            accepted.received.append(message.get("text") or "")
        accepted.disconnected.set()

    async def client(
        self, nursery: trio.Nursery, receive_buffer: int | None = None
    ) -> tuple[WebSocketConnection, trio.SocketStream]:
        """A trio-websocket client, optionally with a small receive buffer (set before
        any data flows, so the kernel cannot grow the window past it)."""
        port = int(self.url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        self.streams.append(stream)
        if receive_buffer is not None:
            stream.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, receive_buffer)
        ws = await wrap_client_stream(
            nursery, stream, "127.0.0.1", "/ws", max_message_size=64 * 1024 * 1024
        )
        return ws, stream


@asynccontextmanager
async def open_sink_server(
    kind: str, ssl_files: tuple[str, str] | None = None, server_pings: bool = False
) -> AsyncIterator[SinkServer]:
    app = SinkServer(kind)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    if ssl_files is not None:  # TLS in hypercorn itself
        config.certfile, config.keyfile = ssl_files
    config.websocket_max_message_size = MAX_MESSAGE
    pings = server_pings and kind != "fast"  # the fast sink leaves pings to the app
    config.websocket_ping_interval = SERVER_PINGS if pings else None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=trio.sleep_forever)
        )
        app.url = binds[0].replace("http", "ws", 1)
        try:
            yield app
        finally:
            for stream in app.streams:
                await stream.aclose()
            nursery.cancel_scope.cancel()
