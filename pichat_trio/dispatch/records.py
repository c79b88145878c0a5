"""Handlers of the actions that read or change stored records: conversations, messages'
pages, settings, and ping."""

from __future__ import annotations

from ..protocol.schemas import (
    CreateConversation,
    Empty,
    GetConversations,
    GetMessages,
    IdPayload,
    UpdateConversation,
    UpdateSettings,
    utc,
)
from .call import Call, Services

__all__ = [
    "create_conversation",
    "delete_conversation",
    "get_conversation",
    "get_conversations",
    "get_messages",
    "get_settings",
    "ping",
    "update_conversation",
    "update_settings",
]

_CONVERSATIONS_PAGE = 50
_MESSAGES_PAGE = 100


async def get_conversations(services: Services, call: Call, p: GetConversations) -> None:
    before = None if p.before is None else utc(p.before, "payload.before")
    found = await services.conversations.recent(call.user, p.limit or _CONVERSATIONS_PAGE, before)
    call.reply("conversations_list", {"conversations": found})


async def create_conversation(services: Services, call: Call, p: CreateConversation) -> None:
    await services.conversations.create(call.user, call.origin, p.title)


async def get_conversation(services: Services, call: Call, p: IdPayload) -> None:
    call.reply("conversation", await services.conversations.get(call.user, str(p.id)))


async def update_conversation(services: Services, call: Call, p: UpdateConversation) -> None:
    await services.conversations.rename(call.user, call.origin, str(p.id), p.title)


async def delete_conversation(services: Services, call: Call, p: IdPayload) -> None:
    conversation_id = str(p.id)
    await services.conversations.delete(call.user, call.origin, conversation_id)
    await services.chat.stop(call.user, conversation_id)  # on whichever instance runs it


async def get_messages(services: Services, call: Call, p: GetMessages) -> None:
    conversation_id = str(p.conversation_id)
    found, has_more = await services.conversations.messages(
        call.user,
        conversation_id,
        p.limit or _MESSAGES_PAGE,
        None if p.before is None else str(p.before),
    )
    call.reply(
        "messages_list",
        {"conversation_id": conversation_id, "messages": found, "has_more": has_more},
    )


async def get_settings(services: Services, call: Call, p: Empty) -> None:
    call.reply("settings", await services.settings.get(call.user))


async def update_settings(services: Services, call: Call, p: UpdateSettings) -> None:
    voice = p.voice_settings
    await services.settings.update(
        call.user,
        call.origin,
        selected_model=p.selected_model,
        voice=None if voice is None else (voice.gender, voice.accent, voice.speed),
        assistant_personality=p.assistant_personality,
    )


async def ping(services: Services, call: Call, p: Empty) -> None:
    call.reply("pong", {})
