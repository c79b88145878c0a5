"""Conversations and their message history, scoped to the requesting user."""

from __future__ import annotations

from datetime import datetime

from ..domain.events import ConversationCreated, ConversationDeleted, ConversationUpdated, Origin
from ..errors import NotFound
from ..models import Conversation, Message, User
from ..ports import Hub
from ..text import clean_title
from .db import Database

__all__ = ["DEFAULT_TITLE", "ConversationService"]

DEFAULT_TITLE = "New conversation"
_NOT_FOUND = "no such conversation"


class ConversationService:
    def __init__(self, db: Database, hub: Hub) -> None:
        self._db = db
        self._repo = db.repository
        self._hub = hub

    async def recent(self, user: User, limit: int, before: datetime | None) -> list[Conversation]:
        return await self._db.run(self._repo.list_conversations, user.id, limit, before)

    async def create(self, user: User, origin: Origin, title: str | None) -> Conversation:
        title = clean_title(title or "") or DEFAULT_TITLE
        conversation = await self._db.run(self._repo.create_conversation, user.id, title)
        await self._hub.publish(user.id, ConversationCreated(user.id, origin, conversation))
        return conversation

    async def get(self, user: User, conversation_id: str) -> Conversation:
        conversation = await self._db.run(self._repo.get_conversation, user.id, conversation_id)
        if conversation is None:
            raise NotFound(_NOT_FOUND)
        return conversation

    async def rename(
        self, user: User, origin: Origin, conversation_id: str, title: str
    ) -> Conversation:
        title = clean_title(title) or DEFAULT_TITLE
        conversation = await self._db.run(
            self._repo.rename_conversation, user.id, conversation_id, title
        )
        if conversation is None:
            raise NotFound(_NOT_FOUND)
        await self._hub.publish(user.id, ConversationUpdated(user.id, origin, conversation))
        return conversation

    async def delete(self, user: User, origin: Origin, conversation_id: str) -> None:
        deleted = await self._db.run(self._repo.delete_conversation, user.id, conversation_id)
        if not deleted:
            raise NotFound(_NOT_FOUND)
        await self._hub.publish(user.id, ConversationDeleted(user.id, origin, conversation_id))

    async def messages(
        self, user: User, conversation_id: str, limit: int, before: str | None
    ) -> tuple[list[Message], bool]:
        page = await self._db.run(self._repo.list_messages, user.id, conversation_id, limit, before)
        if page is None:
            raise NotFound("no such conversation or message")
        return page
