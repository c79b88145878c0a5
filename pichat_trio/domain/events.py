"""Domain events: what services publish to the hub, for every device of a user.

Typed records, no JSON and no connections: the protocol layer turns each
into frame text (``protocol/encode.py``), once per event whatever the
number of connections it reaches. ``Origin`` names the connection and
request an event answers, where addressing needs it: that connection gets
the copy that carries its ``request_id`` (or none, when it was answered
directly). Each event is a tagged ``msgspec.Struct``, so it has a stable
wire form for a backplane between server instances (``domain/wire.py``).
"""

from __future__ import annotations

import msgspec

from ..models import Conversation, Message, Settings

__all__ = [
    "AnswerSaved",
    "ConversationCreated",
    "ConversationDeleted",
    "ConversationUpdated",
    "DomainEvent",
    "GenerationFinished",
    "GenerationStarted",
    "Origin",
    "RequestFailed",
    "SettingsChanged",
    "TokenAdded",
]


class Origin(msgspec.Struct, frozen=True, gc=False):
    """The connection whose request caused an event, and that request's id."""

    connection_id: str
    request_id: str | None = None


class _Event(msgspec.Struct, frozen=True, gc=False, tag_field="event"):
    user_id: str  # whose devices get it


class _Requested(_Event, frozen=True, gc=False):
    origin: Origin  # the request it answers


class ConversationCreated(_Requested, frozen=True, gc=False, tag="conversation_created"):
    conversation: Conversation


class ConversationUpdated(_Requested, frozen=True, gc=False, tag="conversation_updated"):
    conversation: Conversation


class ConversationDeleted(_Requested, frozen=True, gc=False, tag="conversation_deleted"):
    conversation_id: str


class SettingsChanged(_Requested, frozen=True, gc=False, tag="settings_changed"):
    settings: Settings


class GenerationStarted(_Requested, frozen=True, gc=False, tag="generation_started"):
    """The question is stored and its answer begins: the user's other devices get the
    question and typing on (the requester had both with its reply)."""

    question: Message
    message_id: str  # the answer's


class TokenAdded(_Event, frozen=True, gc=False, tag="token_added"):
    """One piece of an answer: the hot path, one per upstream token."""

    conversation_id: str
    message_id: str
    token: str


class GenerationFinished(_Event, frozen=True, gc=False, tag="generation_finished"):
    conversation_id: str
    message_id: str
    finish_reason: str


class AnswerSaved(_Event, frozen=True, gc=False, tag="answer_saved"):
    """The answer's final write is over: typing off, and the stored answer with its
    conversation, or neither when the write could not be made."""

    conversation_id: str
    message: Message | None = None
    conversation: Conversation | None = None


class RequestFailed(_Requested, frozen=True, gc=False, tag="request_failed"):
    """An error for the requester alone, after its request was answered."""

    request_action: str
    code: str
    message: str


DomainEvent = (
    ConversationCreated
    | ConversationUpdated
    | ConversationDeleted
    | SettingsChanged
    | GenerationStarted
    | TokenAdded
    | GenerationFinished
    | AnswerSaved
    | RequestFailed
)
