"""Fixtures for the AI adapters: the wire fake on 127.0.0.1:0 and models pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

import httpx
import pytest
import trio

from pichat_trio.adapters.ai import (
    AzureOpenAIChatModel,
    EchoChatModel,
    OpenAICompatibleChatModel,
    RetryPolicy,
)
from pichat_trio.adapters.ai.http_chat import open_http_client
from pichat_trio.fakes.azure_openai import FakeAzureOpenAI
from pichat_trio.ports import ChatDelta, ChatModel, ChatRequest, ChatTurn

API_KEY = "test-key-0123456789"
DEPLOYMENTS = {"gpt-4": "gpt4-deploy", "gpt-3.5": "gpt35-deploy"}
READ_TIMEOUT = 30.0

Collect = Callable[..., Awaitable[list[ChatDelta]]]


def make_request(text: str = "hello", model: str = "gpt-4", **kwargs: object) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[ChatTurn("system", "You are terse."), ChatTurn("user", text)],
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def deployments() -> dict[str, str]:
    """Product model name -> deployment (Azure) or model id (OpenAI-compatible)."""
    return dict(DEPLOYMENTS)


@pytest.fixture
def request_for() -> Callable[..., ChatRequest]:
    return make_request


@pytest.fixture
def collect() -> Collect:
    """Stream a whole answer into a list, the way callers must: inside ``aclosing``."""

    async def run(
        model: ChatModel, request: ChatRequest, into: list[ChatDelta] | None = None
    ) -> list[ChatDelta]:
        deltas = [] if into is None else into
        async with aclosing(model.stream_reply(request)) as stream:  # type: ignore[type-var]
            async for delta in stream:
                deltas.append(delta)
        return deltas

    return run


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeAzureOpenAI:
    server = FakeAzureOpenAI(api_key=API_KEY, deployments=list(DEPLOYMENTS.values()))
    await nursery.start(server.serve)
    return server


@pytest.fixture(params=["pooled", "plain-httpx"])
async def http_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """The client the server makes (httpx over the project's own HTTP/1.1 pool, whose
    requests the models send straight to the pool), and a caller's plain httpx client
    (httpx's whole path and its own transport): the models must behave the same."""
    if request.param == "pooled":
        async with open_http_client() as pooled:
            yield pooled
    else:
        async with httpx.AsyncClient() as plain:
            yield plain


@pytest.fixture
def timeout() -> httpx.Timeout:
    return httpx.Timeout(connect=5.0, read=READ_TIMEOUT, write=5.0, pool=5.0)


@pytest.fixture
def retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=3, max_total=20.0, base_delay=0.5, jitter=0.0)


@pytest.fixture
def azure(
    fake: FakeAzureOpenAI,
    http_client: httpx.AsyncClient,
    timeout: httpx.Timeout,
    retry: RetryPolicy,
) -> AzureOpenAIChatModel:
    return AzureOpenAIChatModel(
        fake.endpoint, API_KEY, DEPLOYMENTS, client=http_client, timeout=timeout, retry=retry
    )


@pytest.fixture
def openai(
    fake: FakeAzureOpenAI,
    http_client: httpx.AsyncClient,
    timeout: httpx.Timeout,
    retry: RetryPolicy,
) -> OpenAICompatibleChatModel:
    return OpenAICompatibleChatModel(
        f"{fake.endpoint}/v1",
        DEPLOYMENTS,
        api_key=API_KEY,
        client=http_client,
        timeout=timeout,
        retry=retry,
    )


@pytest.fixture
def echo() -> EchoChatModel:
    return EchoChatModel(tokens_per_second=30.0)
