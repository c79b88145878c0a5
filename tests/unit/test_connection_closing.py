"""A frame or ping that reaches a connection while its nursery closes is dropped.

After the peer leaves, the connection's nursery waits for its work to
finish (an interrupted answer is being stored, shielded); it takes no new
tasks then. The heartbeat (another task) may ping it in that window, as may
a fan-out: that must not start a writer there (a send to a peer that is
gone, or, once the nursery refuses new tasks, a RuntimeError in the
heartbeat's task that stops the server). The window cannot be hit on
purpose over a socket, so this drives a ``Connection`` directly.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import trio
import trio.testing

from pichat_trio.adapters.hub.local import LocalHub
from pichat_trio.domain.events import AnswerSaved
from pichat_trio.models import User
from pichat_trio.ports import Delivery
from pichat_trio.protocol.wire import Texts
from pichat_trio.transport.connection import Connection, ConnectionLimits


class PingRecorder:
    """A ``FrameSink`` that leaves pings to the app and records them; sends nothing."""

    app_pings = True
    owed = False

    def __init__(self) -> None:
        self.pings: list[float] = []

    def try_send(self, texts: Texts) -> bool:
        return True

    async def flush(self) -> None:
        await trio.lowlevel.checkpoint()

    async def send(self, texts: Texts) -> None:
        await trio.lowlevel.checkpoint()

    async def ping(self) -> None:
        self.pings.append(trio.current_time())

    async def close(self, code: int, reason: str = "") -> None:
        await trio.lowlevel.checkpoint()


async def test_a_ping_while_the_nursery_closes_is_dropped() -> None:
    user = User(id="u1", name="alice")
    router = SimpleNamespace(handle=None)  # no request is sent in this test
    connection = Connection(user, router, LocalHub(), ConnectionLimits())  # type: ignore[arg-type]
    left = trio.Event()
    in_window = trio.Event()
    release = trio.Event()
    sink = PingRecorder()
    pings = sink.pings

    async def receive() -> dict[str, Any]:
        await left.wait()
        return {"type": "websocket.disconnect"}

    async def storing_an_interrupted_answer() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                in_window.set()
                await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(connection.run, receive, sink)
        await trio.testing.wait_all_tasks_blocked()
        assert len(pings) == 1  # a new connection is pinged at once
        connection.spawn(storing_an_interrupted_answer)
        await trio.testing.wait_all_tasks_blocked()
        left.set()
        await in_window.wait()
        connection.ping()  # the heartbeat's turn comes now
        connection.deliver(Delivery(AnswerSaved("u1", "c1")))  # and a fan-out's
        release.set()
    assert len(pings) == 1
