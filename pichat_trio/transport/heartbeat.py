"""Keepalive pings for every connection, from one task.

hypercorn can ping each WebSocket itself (``websocket_ping_interval``), but
it does so with a task per connection that sleeps between pings: 3.6 KB of
Python objects per connection (tracemalloc, 1,000 idle connections), an
eighth of all an idle connection holds, and a timer per connection. Here
one task walks the open connections once per interval, a slice per tick,
and queues a ping in each one's outbox; its writer sends it. A new
connection is pinged at once, as hypercorn does. The dead-peer deadline is
still hypercorn's (``read_timeout``): a pong is data, so an answering peer
stays and a silent one is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Protocol

import trio

__all__ = ["Heartbeat"]


class _Pingable(Protocol):
    def ping(self) -> None: ...


class Heartbeat:
    __slots__ = ("_connections", "interval", "ticks")

    def __init__(
        self, connections: Collection[_Pingable], interval: float, ticks: int = 20
    ) -> None:
        self._connections = connections
        self.interval = interval
        self.ticks = ticks

    async def run(self) -> None:
        """Ping every connection once per ``interval``, spread over ``ticks`` slices."""
        tick = self.interval / self.ticks
        while True:
            round_ = list(self._connections)  # those that come meanwhile were pinged on arrival
            size = max(1, math.ceil(len(round_) / self.ticks))
            for start in range(0, size * self.ticks, size):
                for connection in round_[start : start + size]:
                    connection.ping()
                await trio.sleep(tick)
