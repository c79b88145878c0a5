"""The chat-completions event stream as Azure (and OpenAI) send it, byte for byte."""

from __future__ import annotations

import time

import h11
import msgspec

from .records import RecordedRequest

__all__ = ["FILTERED", "ChunkWriter", "stream_head", "stream_headers"]


def stream_head(conn: h11.Connection, record: RecordedRequest) -> bytes:
    """The status line and headers of a streamed answer, as Azure sends them."""
    head = conn.send(h11.Response(status_code=200, headers=stream_headers(record)))
    return head or b""


def stream_headers(record: RecordedRequest) -> list[tuple[str, str]]:
    """The headers of a streamed answer (chunked), as Azure sends them."""
    return [
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("transfer-encoding", "chunked"),
        ("x-request-id", f"fake-{record.index}"),
    ]


class ChunkWriter:
    """Pre-built bytes around each token, so a token costs one small encode."""

    __slots__ = ("_azure", "_safe", "_tail")

    def __init__(self, index: int, model: str, *, azure: bool) -> None:
        self._azure = azure
        self._safe = b'"content_filter_results":' + _SAFE + b"," if azure else b""
        created = int(time.time())
        self._tail = (
            f'"created":{created},"id":"chatcmpl-fake{index}","model":"{model}",'
            f'"object":"chat.completion.chunk","system_fingerprint":"fp_fake"}}\r\n\r\n'
        ).encode()

    def _event(self, results: bytes, delta: bytes, finish: bytes) -> bytes:
        return b"".join(
            (
                b'data: {"choices":[{',
                results,
                b'"delta":',
                delta,
                b',"finish_reason":',
                finish,
                b',"index":0,"logprobs":null}],',
                self._tail,
            )
        )

    def opening(self) -> bytes:
        """Prompt filter results and a comment (Azure only), then the role-only delta."""
        role = b'{"role":"assistant","content":""}'
        if not self._azure:
            return self._event(b"", role, b"null")
        prompt = (
            b'data: {"choices":[],"created":0,"id":"","model":"","object":"",'
            b'"prompt_filter_results":[{"prompt_index":0,"content_filter_results":'
            + _SAFE_PROMPT
            + b"}]}\r\n\r\n"
        )
        return (
            prompt
            + b": keep-alive\r\n\r\n"
            + self._event(b'"content_filter_results":{},', role, b"null")
        )

    def token(self, text: str) -> bytes:
        return self._event(self._safe, b'{"content":' + msgspec.json.encode(text) + b"}", b"null")

    def finish(self, reason: str) -> bytes:
        results = b""
        if self._azure:
            filters = FILTERED if reason == "content_filter" else b"{}"
            results = b'"content_filter_results":' + filters + b","
        return self._event(results, b"{}", b'"' + reason.encode() + b'"')


def _results(filtered: str | None) -> bytes:
    categories = {
        name: {"filtered": name == filtered, "severity": "medium" if name == filtered else "safe"}
        for name in ("hate", "self_harm", "sexual", "violence")
    }
    return msgspec.json.encode(categories)


_SAFE = _results(None)
_SAFE_PROMPT = _SAFE[:-1] + b',"jailbreak":{"filtered":false,"detected":false}}'
FILTERED = _results("violence")
