"""An answer's text in the database: checkpoints while it grows, its final write at the end.

The answer is stored as ``streaming`` when generation starts and saved at
most ``checkpoint_seconds`` apart by one process-wide task
(``run_checkpoints``), so the token loop never waits on the database. The
final writes of answers that end together share one transaction
(``finishes``); one that meets a database outage is kept and tried again
(``unsaved``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import trio

from ..errors import Unavailable
from ..models import Conversation, FinishRequest, Message, MessageStatus
from .db import Database
from .generation import Generation
from .group_commit import GroupCommit
from .unsaved import UnsavedAnswers

__all__ = ["AnswerWrites"]

log = logging.getLogger(__name__)


class AnswerWrites:
    def __init__(self, db: Database, checkpoint_seconds: float = 1.0) -> None:
        self._db = db
        self._repo = db.repository
        self._checkpoint_seconds = checkpoint_seconds
        self.finishes = GroupCommit(db, self._finish_messages)
        """Group commit of the answers' final writes; the app's nursery runs it."""
        self.unsaved = UnsavedAnswers(db)
        """Final writes that met a database outage, tried until it is back (app's nursery)."""

    def _finish_messages(
        self, batch: Sequence[FinishRequest]
    ) -> list[tuple[Message, Conversation] | None]:
        return self._repo.finish_messages(batch)  # looked up per batch, not bound at start-up

    async def run_checkpoints(self, active: Iterable[Generation]) -> None:
        """Save every growing answer of ``active`` each ``checkpoint_seconds``, in one
        transaction.

        One task for the whole process (the app's nursery runs it until
        shutdown), so N streams cost one UPDATE batch a second, not N
        transactions, and no token ever waits on the database.
        """
        while True:
            await trio.sleep(self._checkpoint_seconds)
            batch = [  # not the ended ones: their final write is on its way
                (generation, len(generation.parts))
                for generation in active
                if generation.message_id is not None
                and not generation.ended
                and len(generation.parts) != generation.saved_parts
            ]
            if not batch:
                continue
            rows = [(g.user_id, g.message_id, "".join(g.parts[:count])) for g, count in batch]
            try:
                await self._db.run(self._repo.checkpoint_messages, rows)
            except Exception:
                log.exception("checkpoint of %d answers failed; will retry", len(rows))
            else:
                for generation, count in batch:
                    generation.saved_parts = count

    async def store_final(
        self, generation: Generation, content: str, status: MessageStatus
    ) -> tuple[Message, Conversation] | None:
        """The answer's final text and status; the stored message and its conversation,
        or None when the write could not be made (kept for later on an outage)."""
        assert generation.message_id is not None
        request = FinishRequest(generation.user_id, generation.message_id, content, status)
        for attempt in range(3):
            try:
                return await self.finishes.submit(request)
            except Unavailable:
                self.unsaved.keep(request)
                return None
            except Exception:
                log.exception(
                    "storing answer %s failed (attempt %d, %d characters kept in the last "
                    "checkpoint)",
                    generation.message_id,
                    attempt + 1,
                    sum(map(len, generation.parts[: generation.saved_parts])),
                )
                await trio.sleep(0.2 * (attempt + 1))
        return None
