"""A ping that crosses the client's close frame ends the client quietly.

trio-websocket answers a ping that arrives after its own close frame went out,
which wsproto refuses with LocalProtocolError (python-trio/trio-websocket#184).
The server may ping until it has read the client's close, so the test client
takes it as the end it is (the terminal and Pi clients' session, which cancels
its reader first, does not meet it).
A server made of wsproto here pings in exactly that window.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request

from pichat_trio.client import open_client

GUARD = 20  # seconds: a hang guard


async def _server_that_pings_into_the_close(stream: trio.SocketStream, seen: list[str]) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    while True:
        data = await stream.receive_some(65536)
        if not data:
            return
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, Request):
                await stream.send_all(ws.send(AcceptConnection()))
            elif isinstance(event, CloseConnection):
                seen.append("close")
                # a ping that left before this close was read (wsproto, rightly, sends
                # none once it has read a close: the frame is built by hand), then
                # the close's answer
                ping = bytes([0x89, len(b"crossing")]) + b"crossing"
                await stream.send_all(ping + ws.send(event.response()))
                await stream.aclose()
                return


async def _run(connect: Callable[[str], Awaitable[None]]) -> list[str]:
    seen: list[str] = []
    with trio.fail_after(GUARD):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                trio.serve_tcp,
                lambda stream: _server_that_pings_into_the_close(stream, seen),
                0,
            )
            port = listeners[0].socket.getsockname()[1]
            await connect(f"ws://127.0.0.1:{port}")
            nursery.cancel_scope.cancel()
    return seen


async def test_the_test_client_closes_quietly_when_a_ping_crosses_its_close() -> None:
    async def connect(url: str) -> None:
        async with open_client(url, "token"):
            pass

    assert await _run(connect) == ["close"]
