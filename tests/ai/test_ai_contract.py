"""What every ChatModel adapter promises, checked on each of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import aclosing

import pytest
import trio
from trio.testing import MockClock

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI
from pichat_trio.ports import ChatDelta, ChatModel, ChatRequest

Collect = Callable[..., Awaitable[list[ChatDelta]]]
RequestFor = Callable[..., ChatRequest]


@pytest.fixture(params=["echo", "azure", "openai"])
def model(
    request: pytest.FixtureRequest,
    echo: ChatModel,
    azure: ChatModel,
    openai: ChatModel,
) -> ChatModel:
    return {"echo": echo, "azure": azure, "openai": openai}[request.param]


async def test_deltas_make_an_answer_ending_with_a_finish_reason(
    autojump_clock: MockClock, model: ChatModel, collect: Collect, request_for: RequestFor
) -> None:
    assert isinstance(model.name, str) and model.name
    deltas = await collect(model, request_for("hello there"))
    assert "".join(d.text for d in deltas)
    assert deltas[-1].finish_reason in ("stop", "length", "content_filter")
    assert all(d.finish_reason is None for d in deltas[:-1])


async def test_cancelling_the_consumer_stops_the_stream(
    autojump_clock: MockClock,
    model: ChatModel,
    fake: FakeAzureOpenAI,
    request_for: RequestFor,
    collect: Collect,
) -> None:
    fake.behaviour = Behaviour(tokens=50, rate=20.0)
    received = 0
    with trio.CancelScope() as scope:
        async with aclosing(model.stream_reply(request_for("a b c d e f g h"))) as stream:  # type: ignore[type-var]
            async for _ in stream:
                received += 1
                if received == 2:
                    scope.cancel()
    cancelled_at = trio.current_time()
    assert scope.cancelled_caught
    assert received == 2
    if fake.requests:  # the HTTP adapters: the upstream saw the disconnect at once
        record = await fake.wait_disconnected(0)
        assert record.ended_by == "client"
        assert record.disconnected_at is not None
        assert record.disconnected_at - cancelled_at < 0.1
    # the model still works afterwards
    deltas = await collect(model, request_for("again"))
    assert deltas[-1].finish_reason is not None


async def test_aclose_is_idempotent(autojump_clock: MockClock, model: ChatModel) -> None:
    await model.aclose()
    await model.aclose()
