"""A user's conversations: listed, created, renamed, deleted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from ...models import Conversation
from .rows import conversation_of, now_utc
from .store import SqlStore, read
from .tables import conversations, messages

__all__ = ["ConversationStore"]


class ConversationStore(SqlStore):
    """Conversations, each scoped by its user."""

    @read
    def list_conversations(
        self, user_id: str, limit: int, before: datetime | None
    ) -> list[Conversation]:
        query = sa.select(conversations).where(conversations.c.user_id == user_id)
        if before is not None:
            cutoff = before.astimezone(UTC).replace(tzinfo=None)
            query = query.where(conversations.c.updated_at < cutoff)
        query = query.order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
        with self.engine.connect() as connection:
            return [conversation_of(row) for row in connection.execute(query.limit(limit))]

    def create_conversation(self, user_id: str, title: str) -> Conversation:
        now = now_utc()
        conversation_id = str(uuid.uuid4())
        row = {
            "id": conversation_id,
            "user_id": user_id,
            "title": title,
            "created_at": now,
            "updated_at": now,
            "last_message_at": None,
        }
        with self._write() as connection:
            connection.execute(conversations.insert().values(**row))
        return Conversation(
            id=conversation_id,
            title=title,
            created_at=now.replace(tzinfo=UTC),
            updated_at=now.replace(tzinfo=UTC),
            last_message_at=None,
        )

    @read
    def get_conversation(self, user_id: str, conversation_id: str) -> Conversation | None:
        with self.engine.connect() as connection:
            row = self._owned(connection, user_id, conversation_id)
        return None if row is None else conversation_of(row)

    def rename_conversation(
        self, user_id: str, conversation_id: str, title: str
    ) -> Conversation | None:
        with self._write() as connection:
            result = connection.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id, conversations.c.user_id == user_id)
                .values(title=title, updated_at=now_utc())
            )
            if result.rowcount == 0:
                return None
            return conversation_of(self._owned(connection, user_id, conversation_id))

    def delete_conversation(self, user_id: str, conversation_id: str) -> bool:
        with self._write() as connection:
            if self._owned(connection, user_id, conversation_id) is None:
                return False
            connection.execute(
                messages.delete().where(messages.c.conversation_id == conversation_id)
            )
            connection.execute(conversations.delete().where(conversations.c.id == conversation_id))
            return True
