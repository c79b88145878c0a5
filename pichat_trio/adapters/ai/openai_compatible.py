"""OpenAI-compatible chat completions: OpenAI itself, Ollama, llama.cpp, vLLM.

``POST {base_url}/chat/completions`` with an optional bearer key; the
product model name maps to the upstream model id (``ModelMap``). The stream
is the same SSE as Azure's, decoded by the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import msgspec

from ...ports import ChatRequest
from .http_chat import STREAM_HEADERS, HttpCall, HttpChatModel
from .model_map import ModelMap
from .retry import RetryPolicy

__all__ = ["OpenAICompatibleChatModel"]


class OpenAICompatibleChatModel(HttpChatModel):
    """A ``ChatModel`` on any server of the OpenAI chat-completions API.

    ``base_url`` includes the version prefix (``https://api.openai.com/v1``,
    ``http://localhost:11434/v1``). ``models`` maps product model names to
    upstream model ids; its first entry is the default unless
    ``default_model`` names another.
    """

    name = "openai-compatible"

    def __init__(
        self,
        base_url: str,
        models: Mapping[str, str],
        *,
        api_key: str | None = None,
        default_model: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeout: httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        self._models = ModelMap(models, default_model)
        super().__init__(client=client, timeout=timeout, retry=retry)
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._origin_url = httpx.URL(base_url)
        self._headers = dict(STREAM_HEADERS)
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    @property
    def models(self) -> list[str]:
        """The product model names configured."""
        return self._models.names

    def _build_call(self, request: ChatRequest) -> HttpCall:
        model = self._models.resolve(request.model)
        body: dict[str, Any] = {"model": model, "messages": request.messages, "stream": True}
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        return HttpCall(
            url=self._url,
            headers=self._headers,
            body=msgspec.json.encode(body),
            target=f"model {model}",
        )
