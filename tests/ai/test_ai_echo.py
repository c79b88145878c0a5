"""The offline echo model."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio
from trio.testing import MockClock

from pichat_trio.adapters.ai import EchoChatModel
from pichat_trio.adapters.ai.echo import ECHO_NOTICE
from pichat_trio.ports import ChatDelta, ChatRequest, ChatTurn

Collect = Callable[..., Awaitable[list[ChatDelta]]]
RequestFor = Callable[..., ChatRequest]


async def test_says_no_service_is_configured_and_echoes(
    autojump_clock: MockClock, echo: EchoChatModel, collect: Collect, request_for: RequestFor
) -> None:
    deltas = await collect(echo, request_for("  what  is\tthe time?\n"))
    text = "".join(d.text for d in deltas)
    assert text == f"{ECHO_NOTICE} You said:   what  is\tthe time?\n"
    assert "no AI service is configured" in text
    assert deltas[-1] == ChatDelta("", "stop")
    assert all(d.text.strip() and " " not in d.text.strip() for d in deltas[:-2])


async def test_paces_tokens_like_a_model(
    autojump_clock: MockClock, collect: Collect, request_for: RequestFor
) -> None:
    deltas_at: list[float] = []
    start = trio.current_time()
    model = EchoChatModel(tokens_per_second=10)
    for _ in await collect(model, request_for("one two three")):
        deltas_at.append(trio.current_time())
    tokens = len(deltas_at) - 1
    assert trio.current_time() - start == pytest.approx(tokens / 10)


async def test_zero_rate_is_as_fast_as_possible(
    autojump_clock: MockClock, collect: Collect, request_for: RequestFor
) -> None:
    start = trio.current_time()
    deltas = await collect(EchoChatModel(tokens_per_second=0), request_for("quick"))
    assert trio.current_time() == start
    assert deltas[-1].finish_reason == "stop"


async def test_max_tokens_cuts_with_length(
    autojump_clock: MockClock, echo: EchoChatModel, collect: Collect, request_for: RequestFor
) -> None:
    deltas = await collect(echo, request_for("a b c d e f", max_tokens=3))
    assert len(deltas) == 4
    assert deltas[-1] == ChatDelta("", "length")


async def test_echoes_the_last_user_message(
    autojump_clock: MockClock, echo: EchoChatModel, collect: Collect
) -> None:
    request = ChatRequest(
        model="gpt-4",
        messages=[ChatTurn("user", "first"), ChatTurn("assistant", "ok"), ChatTurn("user", "last")],
    )
    assert "".join(d.text for d in await collect(echo, request)).endswith("You said: last")
    empty = ChatRequest(model="gpt-4", messages=[ChatTurn("system", "x")])
    assert "You said nothing." in "".join(d.text for d in await collect(echo, empty))


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        EchoChatModel(tokens_per_second=-1)
