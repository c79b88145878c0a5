"""The Azure adapter against the wire fake, over real sockets.

Time is trio's mock clock wherever a test waits (backoff, timeouts), so no
test sleeps for real.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import httpx
import pytest
import trio
from trio.testing import MockClock

from pichat_trio.adapters.ai import AzureOpenAIChatModel, RetryPolicy
from pichat_trio.adapters.ai.failures import (
    CONTENT_FILTERED,
    DROPPED,
    RATE_LIMITED,
    TIMED_OUT,
    UNREACHABLE,
)
from pichat_trio.errors import UpstreamError, UpstreamUnavailable
from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI
from pichat_trio.ports import ChatDelta, ChatRequest, ChatTurn

API_KEY = "test-key-0123456789"  # the conftest's
DEPLOYMENTS = {"gpt-4": "gpt4-deploy", "gpt-3.5": "gpt35-deploy"}
READ_TIMEOUT = 30.0
Collect = Callable[..., Awaitable[list[ChatDelta]]]
RequestFor = Callable[..., ChatRequest]


def text_of(deltas: list[ChatDelta]) -> str:
    return "".join(d.text for d in deltas)


def test_constants_match_the_fixtures(api_key: str, deployments: dict[str, str]) -> None:
    assert (api_key, deployments) == (API_KEY, DEPLOYMENTS)


async def test_streams_the_whole_answer(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas = await collect(azure, request_for("hi"))
    assert text_of(deltas) == fake.answer()
    # role-only, prompt-filter and filter-result chunks give no deltas; one delta per token
    assert [d.text for d in deltas[:-1]] == [fake.token(i) for i in range(20)]
    assert deltas[-1] == ChatDelta("", "stop")
    assert all(d.finish_reason is None for d in deltas[:-1])
    record = await fake.wait_disconnected(0)
    assert record.ended_by == "complete" and record.tokens_sent == 20


async def test_request_carries_messages_and_picks_deployment_by_model(
    autojump_clock: MockClock, azure: AzureOpenAIChatModel, fake: FakeAzureOpenAI, collect: Collect
) -> None:
    request = ChatRequest(
        model="gpt-3.5",
        messages=[ChatTurn("system", "Be brief."), ChatTurn("user", 'Cześć! "quotes"')],
    )
    await collect(azure, request)
    record = fake.requests[0]
    assert record.deployment == DEPLOYMENTS["gpt-3.5"]
    assert record.target.startswith(f"/openai/deployments/{DEPLOYMENTS['gpt-3.5']}/chat/")
    assert "api-version=2024-10-21" in record.target
    assert record.body == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": 'Cześć! "quotes"'},
        ],
        "stream": True,
    }
    assert record.headers["api-key"] == "<redacted>"  # sent, and never recorded
    assert record.headers["accept"] == "text/event-stream"
    assert record.headers["user-agent"].startswith("pichat/")


async def test_unknown_model_uses_the_default_deployment(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas = await collect(azure, request_for("hi", model="gpt-9"))
    assert deltas[-1].finish_reason == "stop"
    assert fake.requests[0].deployment == DEPLOYMENTS["gpt-4"]


async def test_max_tokens_ends_with_length(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas = await collect(azure, request_for("hi", max_tokens=5))
    assert fake.requests[0].body["max_tokens"] == 5
    assert text_of(deltas) == fake.answer(5)
    assert deltas[-1] == ChatDelta("", "length")


async def test_mid_stream_content_filter(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas = await collect(azure, request_for("hi [fake:filter:3]"))
    assert text_of(deltas) == fake.answer(3)
    assert deltas[-1] == ChatDelta("", "content_filter")


async def test_prompt_content_filter_is_an_upstream_error(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await collect(azure, request_for("[fake:filter]"))
    assert caught.value.message == CONTENT_FILTERED
    assert len(fake.requests) == 1


async def test_wrong_key_is_refused_without_retry(
    autojump_clock: MockClock,
    fake: FakeAzureOpenAI,
    http_client: httpx.AsyncClient,
    collect: Collect,
    request_for: RequestFor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = AzureOpenAIChatModel(fake.endpoint, "wrong-key-secret", DEPLOYMENTS, client=http_client)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamError, match=r"refused the request \(HTTP 401\)"):
        await collect(model, request_for())
    assert len(fake.requests) == 1
    assert "wrong-key-secret" not in caplog.text
    assert "401" in caplog.text


async def test_missing_deployment_is_refused(
    autojump_clock: MockClock,
    fake: FakeAzureOpenAI,
    http_client: httpx.AsyncClient,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    model = AzureOpenAIChatModel(fake.endpoint, API_KEY, {"gpt-4": "nope"}, client=http_client)
    with pytest.raises(UpstreamError, match=r"HTTP 404"):
        await collect(model, request_for())


async def test_429_waits_for_retry_after_then_succeeds(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    fake.fail_next(429, retry_after=2.0)
    start = trio.current_time()
    deltas = await collect(azure, request_for())
    assert text_of(deltas) == fake.answer()
    assert len(fake.requests) == 2
    assert fake.requests[0].status == 429
    assert fake.requests[1].started_at - fake.requests[0].started_at >= 2.0
    assert trio.current_time() - start >= 2.0


async def test_503_is_retried_until_attempts_run_out(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    fake.behaviour = Behaviour(status=503, retry_after=None)
    start = trio.current_time()
    with pytest.raises(UpstreamUnavailable, match=r"HTTP 503"):
        await collect(azure, request_for())
    assert [r.status for r in fake.requests] == [503, 503, 503]
    # exponential backoff without jitter: 0.5 s, then 1 s
    assert trio.current_time() - start == pytest.approx(1.5, abs=0.01)


async def test_500_then_success(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas = await collect(azure, request_for("[fake:500:2]"))
    assert [r.status for r in fake.requests] == [500, 500, 200]
    assert deltas[-1].finish_reason == "stop"


async def test_rate_limit_longer_than_the_budget_fails_at_once(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    start = trio.current_time()
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(azure, request_for("[fake:429] [fake:retry-after:60]"))
    assert caught.value.message == RATE_LIMITED
    assert len(fake.requests) == 1
    assert trio.current_time() - start < 1.0


async def test_no_retry_after_the_first_token(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas: list[ChatDelta] = []
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(azure, request_for("[fake:drop:5]"), deltas)
    assert caught.value.message == DROPPED
    assert text_of(deltas) == fake.answer(5)
    assert all(d.finish_reason is None for d in deltas)
    assert len(fake.requests) == 1
    assert (await fake.wait_disconnected(0)).ended_by == "dropped"


async def test_body_ending_without_done_is_a_dropped_stream(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas: list[ChatDelta] = []
    with pytest.raises(UpstreamUnavailable, match="lost mid-answer"):
        await collect(azure, request_for("[fake:truncate:4]"), deltas)
    assert text_of(deltas) == fake.answer(4)
    assert len(fake.requests) == 1


async def test_drop_before_the_first_token_is_retried(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    with pytest.raises(UpstreamUnavailable):
        await collect(azure, request_for("[fake:drop:0]"))
    assert len(fake.requests) == 3


async def test_stall_fails_by_the_read_timeout(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    deltas: list[ChatDelta] = []
    start = trio.current_time()
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(azure, request_for("[fake:stall:3]"), deltas)
    assert caught.value.message == TIMED_OUT
    assert text_of(deltas) == fake.answer(3)
    assert trio.current_time() - start == pytest.approx(READ_TIMEOUT, abs=0.1)
    record = await fake.wait_disconnected(0)
    assert record.ended_by == "client"
    assert len(fake.requests) == 1


async def test_stall_before_the_first_token_is_not_retried(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    with pytest.raises(UpstreamUnavailable, match="did not answer in time"):
        await collect(azure, request_for("[fake:stall:0]"))
    assert len(fake.requests) == 1


async def test_unreachable_service(
    autojump_clock: MockClock,
    http_client: httpx.AsyncClient,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = AzureOpenAIChatModel(
        f"http://127.0.0.1:{port}",
        API_KEY,
        DEPLOYMENTS,
        client=http_client,
        retry=RetryPolicy(max_attempts=2, jitter=0.0),
    )
    with pytest.raises(UpstreamUnavailable) as caught:
        await collect(model, request_for())
    assert caught.value.message == UNREACHABLE


async def test_cancelled_consumer_closes_the_upstream_at_once(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    request_for: RequestFor,
) -> None:
    fake.behaviour = Behaviour(tokens=100, rate=10.0)
    received = 0
    with trio.CancelScope() as scope:
        async with aclosing(azure.stream_reply(request_for())) as stream:
            async for _ in stream:
                received += 1
                if received == 3:
                    scope.cancel()
    cancelled_at = trio.current_time()
    assert scope.cancelled_caught
    record = await fake.wait_disconnected(0)
    assert record.ended_by == "client"
    assert record.disconnected_at is not None
    assert record.disconnected_at - cancelled_at < 0.1
    assert record.tokens_sent < 5


async def test_cancel_while_waiting_for_the_first_token(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    request_for: RequestFor,
) -> None:
    with trio.move_on_after(5) as scope:
        async with aclosing(azure.stream_reply(request_for("[fake:stall:0]"))) as stream:
            async for _ in stream:
                pytest.fail("no token expected")
    assert scope.cancelled_caught
    record = await fake.wait_disconnected(0)
    assert record.ended_by == "client"
    assert record.disconnected_at is not None
    assert record.disconnected_at - scope.deadline < 0.1


async def test_leaving_the_loop_early_closes_the_upstream(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    request_for: RequestFor,
) -> None:
    fake.behaviour = Behaviour(tokens=100, rate=10.0)
    async with aclosing(azure.stream_reply(request_for())) as stream:
        async for _ in stream:
            break
    left_at = trio.current_time()
    record = await fake.wait_disconnected(0)
    assert record.ended_by == "client"
    assert record.disconnected_at is not None and record.disconnected_at - left_at < 0.1


async def test_connection_is_reused_between_answers(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    for _ in range(3):
        await collect(azure, request_for())
    assert len(fake.requests) == 3
    assert fake.connections == 1


async def test_many_concurrent_streams(
    autojump_clock: MockClock,
    azure: AzureOpenAIChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    fake.behaviour = Behaviour(tokens=10, rate=50.0)
    answers: list[str] = []

    async def one() -> None:
        answers.append(text_of(await collect(azure, request_for())))

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(one)
    assert answers == [fake.answer(10)] * 50


async def test_model_owns_its_client_when_none_is_given(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, collect: Collect, request_for: RequestFor
) -> None:
    model = AzureOpenAIChatModel(fake.endpoint, API_KEY, DEPLOYMENTS)
    deltas = await collect(model, request_for())
    assert deltas[-1].finish_reason == "stop"
    await model.aclose()
    await model.aclose()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "ftp://x"}, "endpoint"),
        ({"api_key": ""}, "api_key"),
        ({"deployments": {}}, "at least one model"),
        ({"default_model": "gpt-9"}, "default model"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "endpoint": "https://example.openai.azure.com",
        "api_key": "k",
        "deployments": DEPLOYMENTS,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        AzureOpenAIChatModel(**args)  # type: ignore[arg-type]
