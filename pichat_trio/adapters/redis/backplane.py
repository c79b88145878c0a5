"""The Redis backplane as one resource: its client, hub, leases and link, and their tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
from prometheus_client import CollectorRegistry

from .client import describe, open_client
from .hub import RedisHub
from .leases import RedisLeases
from .link import Link

__all__ = ["Backplane", "open_backplane"]


@dataclass(frozen=True)
class Backplane:
    hub: RedisHub
    leases: RedisLeases
    link: Link


@asynccontextmanager
async def open_backplane(
    url: str,
    *,
    instance_id: str,
    registry: CollectorRegistry,
    auth: str = "password",
    batch_seconds: float = 0.02,
    lease_seconds: float = 10.0,
) -> AsyncIterator[Backplane]:
    """Connect (or keep trying, in the background, while Redis is down) and run until closed."""
    client = open_client(url, auth)
    link = Link(registry, describe(url))
    async with client:
        hub = RedisHub(client, link, instance_id, batch_seconds)
        leases = RedisLeases(client, link, hub, lease_seconds)
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run)
            nursery.start_soon(leases.run)
            yield Backplane(hub, leases, link)
            nursery.cancel_scope.cancel()
