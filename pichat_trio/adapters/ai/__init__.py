"""AI adapters: ``ChatModel`` implementations and the factory that opens one.

- ``azure_openai``: Azure OpenAI over REST with SSE streaming.
- ``openai_compatible``: OpenAI, Ollama, llama.cpp, vLLM.
- ``echo``: the offline default, clearly labelled.

The HTTP providers share ``http_chat`` (request, stream and retry loop),
``sse`` (event stream decoding), ``retry`` and ``failures``, over ``pool``
(the HTTP/1.1 keep-alive pool, opened with ``open_pool``), whose
connections are ``connection`` (on ``h1``'s framing) and whose read
timeouts are ``read_deadlines``. Nothing here knows the WebSocket protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx

from ...ports import ChatModel
from .azure_openai import DEFAULT_API_VERSION, AzureOpenAIChatModel
from .echo import EchoChatModel
from .http_chat import HttpChatModel, open_http_client
from .openai_compatible import OpenAICompatibleChatModel
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_API_VERSION",
    "PROVIDERS",
    "AzureOpenAIChatModel",
    "EchoChatModel",
    "OpenAICompatibleChatModel",
    "RetryPolicy",
    "open_chat_model",
]

PROVIDERS = ("azure", "openai", "echo")


@asynccontextmanager
async def open_chat_model(
    provider: str,
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    api_version: str = DEFAULT_API_VERSION,
    deployments: Mapping[str, str] | None = None,
    default_model: str | None = None,
    base_url: str | None = None,
    echo_tokens_per_second: float = 30.0,
    connect_timeout: float = 10.0,
    read_timeout: float = 30.0,
    max_attempts: int = 3,
    max_retry_seconds: float = 20.0,
    max_connections: int = 512,
) -> AsyncIterator[ChatModel]:
    """Open the chat model of ``provider`` and close it, and its HTTP client, on exit.

    - ``"azure"`` needs ``endpoint``, ``api_key`` and ``deployments``
      (product model name -> Azure deployment name).
    - ``"openai"`` needs ``base_url`` and ``deployments`` (product model
      name -> upstream model id); ``api_key`` is optional.
    - ``"echo"`` needs nothing; ``echo_tokens_per_second`` paces it.

    Timeouts are seconds: ``read_timeout`` is the longest silence tolerated
    mid-stream. A bad argument raises ``ValueError`` naming it, before any
    connection is made.
    """
    if provider == "echo":
        echo = EchoChatModel(echo_tokens_per_second)
        try:
            yield echo
        finally:
            await echo.aclose()
        return
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    if not deployments:
        raise ValueError(f"deployments: at least one model is required for provider {provider!r}")
    if connect_timeout <= 0 or read_timeout <= 0:
        raise ValueError("connect_timeout and read_timeout must be positive")
    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=connect_timeout, pool=connect_timeout
    )
    retry = RetryPolicy(max_attempts=max_attempts, max_total=max_retry_seconds)
    async with open_http_client(timeout=timeout, max_connections=max_connections) as client:
        model: HttpChatModel
        if provider == "azure":
            if not endpoint:
                raise ValueError("endpoint is required for provider 'azure'")
            if not api_key:
                raise ValueError("api_key is required for provider 'azure'")
            model = AzureOpenAIChatModel(
                endpoint,
                api_key,
                deployments,
                api_version=api_version,
                default_model=default_model,
                client=client,
                timeout=timeout,
                retry=retry,
            )
        else:
            if not base_url:
                raise ValueError("base_url is required for provider 'openai'")
            model = OpenAICompatibleChatModel(
                base_url,
                deployments,
                api_key=api_key,
                default_model=default_model,
                client=client,
                timeout=timeout,
                retry=retry,
            )
        try:
            yield model
        finally:
            await model.aclose()
