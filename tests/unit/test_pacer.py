"""Token-frame pacing on a virtual clock: when a connection's writer is woken."""

from __future__ import annotations

import itertools
import json

import pytest
import trio
from trio.testing import MockClock

from pichat_trio.protocol.wire import TokenFrame
from pichat_trio.transport.outbox import Outbox
from pichat_trio.transport.pacer import FramePacer

PREFIX = TokenFrame.prefix_for("c1", "m1")


def token(text: str) -> TokenFrame:
    return TokenFrame(PREFIX, "m1", text)


@pytest.fixture
def pacer(nursery: trio.Nursery) -> FramePacer:
    pacer = FramePacer(0.1)
    nursery.start_soon(pacer.run)
    return pacer


async def test_tokens_soon_after_a_send_wait_for_the_tick(
    autojump_clock: MockClock, nursery: trio.Nursery, pacer: FramePacer
) -> None:
    outbox = Outbox("conn", pacer=pacer)
    sent: list[tuple[float, str]] = []

    async def writer() -> None:
        while True:
            text = outbox.pop()
            if text is None:
                await outbox.wait()
                continue
            now = trio.current_time()
            if outbox.streaming:
                outbox.last_sent = now
            sent.append((round(now, 3), text))

    nursery.start_soon(writer)
    await trio.sleep(1)
    start = trio.current_time()
    for i in range(10):  # a token every 20 ms
        outbox.put(token(f"t{i}"))
        await trio.sleep(0.02)
    await trio.sleep(0.5)
    times = [t - start for t, _ in sent]
    assert round(times[0], 3) == 0  # the first token is not held
    assert all(b - a >= 0.08 for a, b in itertools.pairwise(times)), times
    assert len(sent) <= 4
    streamed = "".join(json.loads(frame)["payload"]["token"] for _, frame in sent)
    assert streamed == "".join(f"t{i}" for i in range(10))
    assert len(pacer) == 0


async def test_the_first_token_of_the_next_answer_is_not_held(
    autojump_clock: MockClock, nursery: trio.Nursery, pacer: FramePacer
) -> None:
    outbox = Outbox("conn", pacer=pacer)
    outbox.put(token("end of the first answer"))
    assert outbox.pop() is not None
    outbox.last_sent = trio.current_time()
    waiting = trio.Event()

    async def writer() -> None:
        await outbox.wait()
        waiting.set()

    nursery.start_soon(writer)
    await trio.sleep(0.01)
    start = trio.current_time()
    outbox.put(TokenFrame(TokenFrame.prefix_for("c1", "m2"), "m2", "next"))
    await waiting.wait()
    assert trio.current_time() == start  # woken at once, not at the tick
    assert len(pacer) == 0
