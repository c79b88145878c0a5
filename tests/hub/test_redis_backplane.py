"""The Redis backplane under Trio, against a private redis-server: two backplanes in one
process stand for two instances."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import trio
from private_redis import PrivateRedis, private_redis
from prometheus_client import CollectorRegistry, Counter

from pichat_trio.adapters.redis.backplane import Backplane, open_backplane
from pichat_trio.domain.events import (
    DomainEvent,
    GenerationFinished,
    Origin,
    RequestFailed,
    TokenAdded,
)
from pichat_trio.ports import Delivery


class Device:
    def __init__(self, name: str) -> None:
        self.id = name
        self.events: list[DomainEvent] = []
        self.changed = trio.Event()

    def deliver(self, delivery: Delivery) -> None:
        self.events.append(delivery.event)
        self.changed.set()

    async def until(self, count: int) -> list[DomainEvent]:
        while len(self.events) < count:
            self.changed = trio.Event()
            await self.changed.wait()
        return self.events


def _token(user_id: str, text: str) -> TokenAdded:
    return TokenAdded(user_id, "c", "m", text)


def _final(user_id: str) -> GenerationFinished:
    return GenerationFinished(user_id, "c", "m", "stop")


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@asynccontextmanager
async def two(redis: PrivateRedis) -> AsyncIterator[tuple[Backplane, Backplane]]:
    async with (
        open_backplane(redis.url, instance_id="a", registry=CollectorRegistry()) as a,
        open_backplane(redis.url, instance_id="b", registry=CollectorRegistry()) as b,
    ):
        with trio.fail_after(10):
            await a.link.up.wait_value(True)
            await b.link.up.wait_value(True)
        yield a, b


def _count(counter: Counter) -> float:
    return float(counter.collect()[0].samples[0].value)


async def test_tokens_are_local_at_once_and_cross_merged_in_one_message(
    redis: PrivateRedis,
) -> None:
    async with two(redis) as (a, b):
        here, there = Device("here"), Device("there")
        async with a.hub.subscribe("u", here), b.hub.subscribe("u", there):
            for i in range(50):  # no checkpoint in between: one batching window
                await a.hub.publish("u", _token("u", f"t{i} "))
            await a.hub.publish("u", _final("u"))
            failed = RequestFailed("u", Origin("here", "r1"), "send_message", "busy", "no")
            await a.hub.publish("u", failed)
            assert len(here.events) == 52  # delivered here before anything went to Redis
            with trio.fail_after(10):
                merged, final = await there.until(2)
            assert merged == _token("u", "".join(f"t{i} " for i in range(50)))
            assert final == _final("u")
            assert _count(a.link.published) == 1  # one Redis message for 50 tokens
            assert _count(a.link.received) == 0  # its own message came back and was skipped
            assert len(there.events) == 2  # the requester's error stayed with the requester


async def test_an_instance_receives_only_its_users_traffic(redis: PrivateRedis) -> None:
    async with two(redis) as (a, b):
        mine, theirs = Device("mine"), Device("theirs")
        async with a.hub.subscribe("v", theirs), b.hub.subscribe("u", mine):
            await a.hub.publish("v", _final("v"))  # published before u's, in order
            await a.hub.publish("u", _final("u"))
            with trio.fail_after(10):
                assert await mine.until(1) == [_final("u")]
            assert _count(b.link.received) == 1  # v's message never reached b


async def test_a_lease_is_one_instance_s_and_taken_over_by_its_own_next_answer(
    redis: PrivateRedis,
) -> None:
    async with two(redis) as (a, b):
        assert await a.leases.acquire("u", "c")
        assert not await b.leases.acquire("u", "c")
        a.leases.release("u", "c")
        assert await a.leases.acquire("u", "c")  # its own release, on its way, taken over
        assert not await b.leases.acquire("u", "c")
        assert await b.leases.acquire("u", "other")
        b.leases.cancel_here = lambda user, conversation: (True, "m-1")
        assert await a.leases.cancel_elsewhere("u", "other") == (True, "m-1")
        assert await b.leases.cancel_elsewhere("u", "other") == (False, None)  # its own
        assert await b.leases.cancel_elsewhere("u", "none") == (False, None)
