"""Messages: stored one at a time, answers checkpointed and finished in batches, listed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ...models import Conversation, FinishRequest, Message, MessageStatus
from .rows import MESSAGE_COLUMNS, conversation_of, message_of, new_message, now_utc
from .store import INSERT_MESSAGE, TOUCH, SqlStore, read
from .tables import conversations, messages

__all__ = ["MessageStore"]

# Built once with bound parameters, as the statements in ``store.py``.
_FINISH = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"), messages.c.user_id == sa.bindparam("b_user"))
    .values(content=sa.bindparam("b_content"), status=sa.bindparam("b_status"))
)
_CHECKPOINT = (  # a checkpoint that lands after the answer's final write changes nothing
    messages.update()
    .where(
        messages.c.id == sa.bindparam("b_id"),
        messages.c.user_id == sa.bindparam("b_user"),
        messages.c.status == "streaming",
    )
    .values(content=sa.bindparam("b_content"))
)
_MESSAGES_BY_ID = sa.select(*MESSAGE_COLUMNS, messages.c.user_id).where(
    messages.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_CONVERSATIONS = sa.select(conversations).where(
    conversations.c.id.in_(sa.bindparam("b_ids", expanding=True))
)


class MessageStore(SqlStore):
    """The messages of the users' conversations."""

    def _touch(
        self,
        connection: sa.Connection,
        user_id: str,
        conversation_id: str,
        now: datetime,
        **values: Any,
    ) -> bool:
        """Mark the user's conversation active; False if it is not theirs or gone."""
        if not values:
            touched = connection.execute(
                TOUCH, {"b_conversation": conversation_id, "b_user": user_id, "b_now": now}
            )
            return touched.rowcount > 0
        result = connection.execute(
            conversations.update()
            .where(conversations.c.id == conversation_id, conversations.c.user_id == user_id)
            .values(updated_at=now, last_message_at=now, **values)
        )
        return result.rowcount > 0

    def add_message(
        self,
        user_id: str,
        conversation_id: str,
        role: str,
        content: str,
        status: MessageStatus,
        is_audio: bool = False,
        audio_file: str | None = None,
    ) -> tuple[Message, Conversation] | None:
        """Store a message and mark the conversation active, in one transaction."""
        now = now_utc()
        with self._write() as connection:
            if not self._touch(connection, user_id, conversation_id, now):
                return None
            message, values = new_message(
                user_id,
                conversation_id,
                "assistant" if role == "assistant" else "user",
                content,
                status,
                is_audio,
                audio_file,
                now,
            )
            connection.execute(INSERT_MESSAGE, values)
            conversation = conversation_of(self._owned(connection, user_id, conversation_id))
        return message, conversation

    def checkpoint_messages(self, rows: Sequence[tuple[str, str | None, str]]) -> None:
        """The growing text of several answers ``(user_id, message_id, content)``,
        saved in one transaction; an answer no longer streaming (its final write
        came first) keeps what that write stored."""
        if not rows:
            return
        with self._write() as connection:
            connection.execute(
                _CHECKPOINT,
                [{"b_user": u, "b_id": m, "b_content": c} for u, m, c in rows],
            )

    def finish_messages(
        self, requests: Sequence[FinishRequest]
    ) -> list[tuple[Message, Conversation] | None]:
        """The final write of each answer, and its conversation's activity time, in one
        transaction and a statement per kind for all. None for an answer that is gone
        (or not the user's)."""
        now = now_utc()
        with self._write() as connection:
            connection.execute(
                _FINISH,
                [
                    {
                        "b_id": r.message_id,
                        "b_user": r.user_id,
                        "b_content": r.content,
                        "b_status": r.status,
                    }
                    for r in requests
                ],
            )
            found = connection.execute(
                _MESSAGES_BY_ID, {"b_ids": [r.message_id for r in requests]}
            ).all()
            rows = {row.id: row for row in found}
            mine = {
                r.message_id: row
                for r in requests
                if (row := rows.get(r.message_id)) is not None and row.user_id == r.user_id
            }
            if not mine:
                return [None] * len(requests)
            touched = {(row.user_id, row.conversation_id) for row in mine.values()}
            connection.execute(
                TOUCH,
                [{"b_user": u, "b_conversation": c, "b_now": now} for u, c in sorted(touched)],
            )
            owned = connection.execute(
                _CONVERSATIONS, {"b_ids": sorted({c for _, c in touched})}
            ).all()
            conversations_by_id = {row.id: row for row in owned}
        results: list[tuple[Message, Conversation] | None] = []
        for r in requests:
            row = mine.get(r.message_id)
            conversation = None if row is None else conversations_by_id.get(row.conversation_id)
            if row is None or conversation is None or conversation.user_id != r.user_id:
                results.append(None)
            else:
                results.append((message_of(row), conversation_of(conversation)))
        return results

    @read
    def list_messages(
        self, user_id: str, conversation_id: str, limit: int, before: str | None
    ) -> tuple[list[Message], bool] | None:
        """Up to ``limit`` messages before the message ``before``, oldest first."""
        with self.engine.connect() as connection:
            if self._owned(connection, user_id, conversation_id) is None:
                return None
            query = sa.select(*MESSAGE_COLUMNS).where(messages.c.conversation_id == conversation_id)
            if before is not None:
                anchor = connection.execute(
                    sa.select(messages.c.seq).where(
                        messages.c.id == before, messages.c.conversation_id == conversation_id
                    )
                ).scalar()
                if anchor is None:
                    return None
                query = query.where(messages.c.seq < anchor)
            rows = connection.execute(query.order_by(messages.c.seq.desc()).limit(limit + 1)).all()
        has_more = len(rows) > limit
        return [message_of(row) for row in reversed(rows[:limit])], has_more

    def interrupt_streaming(self) -> int:
        """At start-up: answers left ``streaming`` by a crash become ``interrupted``."""
        with self._write() as connection:
            result = connection.execute(
                messages.update()
                .where(messages.c.status == "streaming")
                .values(status="interrupted")
            )
            return result.rowcount
