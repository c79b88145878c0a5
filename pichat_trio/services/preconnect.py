"""Connections to the AI service, opened before the messages that need them.

A client's first message would otherwise open its upstream connection in
its own time to first token: a TCP and a TLS handshake to Azure, and in a
burst of first messages (everyone reconnecting after a deploy, a class
pressing enter together) a trip through the busy scheduler each, on the
core that is reading and storing those messages. So when a client
connects, one task opens connections until the pool holds one for each
connected client (in use or idle), up to ``limit``. It costs one upstream
connect per client connect at most; unused connections expire like any
other kept connection.

A failure is logged and the next try waits ``retry_seconds``: an
unreachable service is reported by the messages themselves.
"""

from __future__ import annotations

import logging

import trio

from ..errors import PichatError
from ..ports import ChatModel

__all__ = ["Preconnect"]

log = logging.getLogger(__name__)


class Preconnect:
    def __init__(self, model: ChatModel, limit: int, retry_seconds: float = 30.0) -> None:
        self._model = model
        self._limit = limit
        self._retry_seconds = retry_seconds
        self._wanted = 0
        self._wake = trio.Event()

    def clients(self, count: int) -> None:
        """``count`` clients are connected now: have as many connections ready."""
        self._wanted = min(count, self._limit)
        if self._wanted > 0:
            self._wake.set()

    async def run(self) -> None:
        """Open what ``clients`` asked for, until cancelled (the app's nursery runs it)."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            try:
                opened = await self._model.preconnect(self._wanted)
            except PichatError as error:
                log.warning(
                    "could not open connections to the AI service ahead of messages (%s); "
                    "trying again in %.0f s",
                    error.message,
                    self._retry_seconds,
                )
                await trio.sleep(self._retry_seconds)
                continue
            if opened:
                log.debug("opened %d connections to the AI service ahead of messages", opened)
