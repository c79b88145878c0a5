"""Answers whose final write failed because the database was away, kept until it is back.

A stream that ends during an outage has sent its text to the client; its
row holds the last checkpoint, status ``streaming``. The final write is
idempotent (the same text and status, written again, change nothing), so
it is kept here and tried again until the database answers: the answer
is stored after the outage as if it had ended just then. What is still
unsaved at shutdown is logged with its message ids; nothing is dropped
silently. At most ``limit`` answers are kept (each holds its text); past
that, an answer is logged as lost with its id.
"""

from __future__ import annotations

import logging

import trio

from ..models import FinishRequest
from .db import Database

__all__ = ["UnsavedAnswers"]

log = logging.getLogger(__name__)

_RETRY_SECONDS = 1.0
_MAX_RETRY_SECONDS = 10.0


class UnsavedAnswers:
    def __init__(self, db: Database, limit: int = 10_000) -> None:
        self._db = db
        self._limit = limit
        self._kept: dict[str, FinishRequest] = {}  # by message id: the latest write wins
        self._arrived = trio.Event()

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, request: FinishRequest) -> None:
        if len(self._kept) >= self._limit and request.message_id not in self._kept:
            log.error(
                "answer %s lost: %d answers already wait for the database",
                request.message_id,
                len(self._kept),
            )
            return
        self._kept[request.message_id] = request
        log.warning("answer %s kept until the database is back", request.message_id)
        self._arrived.set()

    async def run(self) -> None:
        """Store the kept answers as soon as the database takes them (the app's nursery)."""
        pause = _RETRY_SECONDS
        try:
            while True:
                await self._arrived.wait()
                batch = list(self._kept.values())
                try:
                    await self._db.run(self._db.repository.finish_messages, batch)
                except Exception as error:
                    log.info("%d answers still wait for the database (%s)", len(batch), error)
                    await trio.sleep(pause)
                    pause = min(pause * 2, _MAX_RETRY_SECONDS)
                    continue
                pause = _RETRY_SECONDS
                for request in batch:
                    if self._kept.get(request.message_id) is request:
                        del self._kept[request.message_id]
                log.info("stored %d answers kept during the outage", len(batch))
                if not self._kept:
                    self._arrived = trio.Event()
        finally:
            if self._kept:
                log.error(
                    "%d answers not stored (the database did not come back): %s",
                    len(self._kept),
                    ", ".join(sorted(self._kept)),
                )
