"""Azure OpenAI chat completions, streamed over REST.

``POST {endpoint}/openai/deployments/{deployment}/chat/completions
?api-version=...`` with an ``api-key`` header. The product model name picks
the deployment (``ModelMap``: an unknown name gets the default deployment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from ...ports import ChatRequest
from .http_chat import STREAM_HEADERS, HttpCall, HttpChatModel
from .model_map import ModelMap
from .retry import RetryPolicy

__all__ = ["DEFAULT_API_VERSION", "AzureOpenAIChatModel"]

DEFAULT_API_VERSION = "2024-10-21"
"""The newest generally available data-plane API version we were built against."""


class AzureOpenAIChatModel(HttpChatModel):
    """A ``ChatModel`` on an Azure OpenAI resource.

    ``deployments`` maps product model names to deployment names; its first
    entry is the default unless ``default_model`` names another.
    """

    name = "azure-openai"

    def __init__(
        self,
        endpoint: str,
        api_key: str,
        deployments: Mapping[str, str],
        *,
        api_version: str = DEFAULT_API_VERSION,
        default_model: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not endpoint.startswith(("https://", "http://")):
            raise ValueError("endpoint must be an http(s) URL")
        if not api_key:
            raise ValueError("api_key is required")
        if not api_version:
            raise ValueError("api_version is required")
        self._deployments = ModelMap(deployments, default_model)
        super().__init__(client=client, timeout=timeout, retry=retry)
        base = endpoint.rstrip("/")
        self._origin_url = httpx.URL(base)
        version = quote(api_version, safe="")
        self._url_prefix = f"{base}/openai/deployments/"
        self._url_suffix = f"/chat/completions?api-version={version}"
        self._headers = {**STREAM_HEADERS, "api-key": api_key}

    @property
    def models(self) -> list[str]:
        """The product model names configured."""
        return self._deployments.names

    def _build_call(self, request: ChatRequest) -> HttpCall:
        deployment = self._deployments.resolve(request.model)
        body: dict[str, Any] = {"messages": request.messages, "stream": True}
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        return HttpCall(
            url=f"{self._url_prefix}{quote(deployment, safe='')}{self._url_suffix}",
            headers=self._headers,
            body=msgspec.json.encode(body),
            target=f"deployment {deployment}",
        )
