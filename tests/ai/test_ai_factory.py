"""open_chat_model: the factory the settings call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from trio.testing import MockClock

from pichat_trio.adapters.ai import (
    AzureOpenAIChatModel,
    EchoChatModel,
    OpenAICompatibleChatModel,
    open_chat_model,
)
from pichat_trio.fakes.azure_openai import FakeAzureOpenAI
from pichat_trio.ports import ChatDelta, ChatRequest

Collect = Callable[..., Awaitable[list[ChatDelta]]]
RequestFor = Callable[..., ChatRequest]


async def test_echo(autojump_clock: MockClock, collect: Collect, request_for: RequestFor) -> None:
    async with open_chat_model("echo", echo_tokens_per_second=0) as model:
        assert isinstance(model, EchoChatModel)
        assert (await collect(model, request_for()))[-1].finish_reason == "stop"


async def test_azure(
    autojump_clock: MockClock,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
    api_key: str,
    deployments: dict[str, str],
) -> None:
    async with open_chat_model(
        "azure", endpoint=fake.endpoint, api_key=api_key, deployments=deployments, read_timeout=5
    ) as model:
        assert isinstance(model, AzureOpenAIChatModel)
        deltas = await collect(model, request_for())
        assert "".join(d.text for d in deltas) == fake.answer()


async def test_openai(
    autojump_clock: MockClock,
    fake: FakeAzureOpenAI,
    collect: Collect,
    request_for: RequestFor,
    api_key: str,
    deployments: dict[str, str],
) -> None:
    async with open_chat_model(
        "openai", base_url=f"{fake.endpoint}/v1", api_key=api_key, deployments=deployments
    ) as model:
        assert isinstance(model, OpenAICompatibleChatModel)
        assert (await collect(model, request_for()))[-1].finish_reason == "stop"


@pytest.mark.parametrize(
    ("provider", "kwargs", "message"),
    [
        ("bard", {}, "provider must be one of"),
        ("azure", {"api_key": "k", "deployments": {"a": "b"}}, "endpoint"),
        ("azure", {"endpoint": "https://x", "deployments": {"a": "b"}}, "api_key"),
        ("azure", {"endpoint": "https://x", "api_key": "k"}, "deployments"),
        ("openai", {"deployments": {"a": "b"}}, "base_url"),
        (
            "openai",
            {"base_url": "http://x", "deployments": {"a": "b"}, "read_timeout": 0},
            "timeout",
        ),
    ],
)
async def test_bad_arguments_name_what_is_wrong(
    provider: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        async with open_chat_model(provider, **kwargs):  # type: ignore[arg-type]
            pass
