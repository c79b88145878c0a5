"""The OpenAI-compatible adapter against the fake's /v1 route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from trio.testing import MockClock

from pichat_trio.adapters.ai import OpenAICompatibleChatModel
from pichat_trio.errors import UpstreamError, UpstreamUnavailable
from pichat_trio.fakes.azure_openai import FakeAzureOpenAI
from pichat_trio.ports import ChatDelta, ChatRequest

Collect = Callable[..., Awaitable[list[ChatDelta]]]
RequestFor = Callable[..., ChatRequest]


async def test_streams_from_the_v1_route(
    autojump_clock: MockClock,
    openai: OpenAICompatibleChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
    deployments: dict[str, str],
) -> None:
    deltas = await collect(openai, request_for("hi", model="gpt-3.5", max_tokens=50))
    assert "".join(d.text for d in deltas) == fake.answer()
    assert deltas[-1] == ChatDelta("", "stop")
    record = fake.requests[0]
    assert record.route == "openai"
    assert record.target == "/v1/chat/completions"
    assert record.headers["authorization"] == "<redacted>"
    assert record.body["model"] == deployments["gpt-3.5"]
    assert record.body["stream"] is True
    assert record.body["max_tokens"] == 50
    assert record.body["messages"][-1] == {"role": "user", "content": "hi"}


async def test_shares_the_retry_rules(
    autojump_clock: MockClock,
    openai: OpenAICompatibleChatModel,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
) -> None:
    fake.fail_next(429, retry_after=1.5)
    deltas = await collect(openai, request_for())
    assert deltas[-1].finish_reason == "stop"
    assert fake.requests[1].started_at - fake.requests[0].started_at >= 1.5

    deltas = []
    with pytest.raises(UpstreamUnavailable):
        await collect(openai, request_for("[fake:drop:2]"), deltas)
    assert len(deltas) == 2
    assert len(fake.requests) == 3


async def test_missing_key_is_refused(
    autojump_clock: MockClock,
    fake: FakeAzureOpenAI,
    http_client: httpx.AsyncClient,
    collect: Collect,
    request_for: RequestFor,
    deployments: dict[str, str],
) -> None:
    model = OpenAICompatibleChatModel(f"{fake.endpoint}/v1", deployments, client=http_client)
    with pytest.raises(UpstreamError, match=r"HTTP 401"):
        await collect(model, request_for())
    assert "authorization" not in fake.requests[0].headers


async def test_unknown_upstream_model_is_refused(
    autojump_clock: MockClock,
    fake: FakeAzureOpenAI,
    http_client: httpx.AsyncClient,
    collect: Collect,
    request_for: RequestFor,
    api_key: str,
) -> None:
    model = OpenAICompatibleChatModel(
        f"{fake.endpoint}/v1", {"gpt-4": "llama3"}, api_key=api_key, client=http_client
    )
    with pytest.raises(UpstreamError, match=r"HTTP 404"):
        await collect(model, request_for())


def test_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatibleChatModel("localhost:11434", {"gpt-4": "llama3"})
