"""The offline default: an echo that says plainly no AI service is configured.

It streams like a real model (word-sized tokens at a steady pace, a finish
reason at the end), so the whole product works, and can be demonstrated and
load-tested, on a machine with no AI service.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

import trio

from ...ports import ChatDelta, ChatRequest, FinishReason

__all__ = ["ECHO_NOTICE", "EchoChatModel", "echo_text"]

ECHO_NOTICE = "[echo model: no AI service is configured]"

_TOKEN = re.compile(r"\s*\S+|\s+")
"""A word with the whitespace before it, or trailing whitespace: tokens
concatenate back to the exact text."""


def echo_text(request: ChatRequest) -> str:
    """The whole answer the echo model gives to ``request``."""
    said = next((t.content for t in reversed(request.messages) if t.role == "user"), None)
    if said is None:
        return f"{ECHO_NOTICE} You said nothing."
    return f"{ECHO_NOTICE} You said: {said}"


class EchoChatModel:
    """A ``ChatModel`` that repeats the user's last message.

    ``tokens_per_second`` paces the stream like a real model (0: as fast as
    possible, still yielding to other tasks between tokens). ``max_tokens``
    of a request cuts the answer with finish reason ``length``.
    """

    name = "echo"

    def __init__(self, tokens_per_second: float = 30.0) -> None:
        if tokens_per_second < 0:
            raise ValueError("tokens_per_second must not be negative")
        self._interval = 1 / tokens_per_second if tokens_per_second else 0.0

    async def aclose(self) -> None:
        """Nothing to release."""

    async def preconnect(self, streams: int) -> int:
        """Nothing to connect to."""
        return 0

    async def stream_reply(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        tokens = _TOKEN.findall(echo_text(request))
        finish: FinishReason = "stop"
        if request.max_tokens is not None and len(tokens) > request.max_tokens:
            tokens = tokens[: request.max_tokens]
            finish = "length"
        for token in tokens:
            if self._interval:
                await trio.sleep(self._interval)
            else:
                await trio.lowlevel.checkpoint()
            yield ChatDelta(token)
        yield ChatDelta("", finish)
