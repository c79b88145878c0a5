"""Domain events to frame text: each event encoded once, for all its connections.

``frame_of(delivery)`` is what a connection calls for each event the hub
hands it: the first connection encodes, the others get the same frame
object (``Delivery.encoded``). A frame addressed with an origin carries
the requester's own copy (with its ``request_id``), the one other
encoding an event may cost. Token events keep the fast path: the
envelope's prefix is shared by all frames of a message (a bounded cache
by message), and a ``TokenFrame`` stays mergeable in a lagging outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..domain.events import (
    AnswerSaved,
    ConversationCreated,
    ConversationDeleted,
    ConversationUpdated,
    DomainEvent,
    GenerationFinished,
    GenerationStarted,
    Origin,
    RequestFailed,
    SettingsChanged,
    TokenAdded,
)
from ..ports import Delivery
from .wire import Frame, TokenFrame, encode_event

__all__ = ["frame_for_event", "frame_of", "typing_text"]


def frame_of(delivery: Delivery) -> Frame | TokenFrame:
    """The frame of a delivered event, encoded by the first connection that asks."""
    frame = delivery.encoded
    if frame is None:
        frame = delivery.encoded = frame_for_event(delivery.event)
    return frame  # type: ignore[return-value]  # only this function fills ``encoded``


def frame_for_event(event: DomainEvent) -> Frame | TokenFrame:
    if type(event) is TokenAdded:  # the hot path, before the table
        message_id = event.message_id
        prefix = _prefixes.get(message_id)
        if prefix is None:
            prefix = _new_prefix(event.conversation_id, message_id)
        return TokenFrame(prefix, message_id, event.token)
    return _ENCODERS[type(event)](event)


_PREFIXES = 4096
"""Messages whose token prefix is kept: more than the answers streaming at once."""
_prefixes: dict[str, str] = {}  # by message id (a UUID, unique across conversations)


def _new_prefix(conversation_id: str, message_id: str) -> str:
    if len(_prefixes) >= _PREFIXES:
        del _prefixes[next(iter(_prefixes))]  # the oldest message's
    prefix = _prefixes[message_id] = TokenFrame.prefix_for(conversation_id, message_id)
    return prefix


def typing_text(conversation_id: str, is_typing: bool) -> str:
    return encode_event(
        "typing_indicator", {"conversation_id": conversation_id, "is_typing": is_typing}
    )


def _to_all(action: str, payload: Any, origin: Origin) -> Frame:
    """Every connection; the requester's copy carries its request_id."""
    text = encode_event(action, payload)
    mine = text if origin.request_id is None else encode_event(action, payload, origin.request_id)
    return Frame(text, origin.connection_id, mine)


def _conversation_created(event: ConversationCreated) -> Frame:
    return _to_all("conversation_created", event.conversation, event.origin)


def _conversation_updated(event: ConversationUpdated) -> Frame:
    return _to_all("conversation_updated", event.conversation, event.origin)


def _conversation_deleted(event: ConversationDeleted) -> Frame:
    return _to_all("conversation_deleted", {"id": event.conversation_id}, event.origin)


def _settings_changed(event: SettingsChanged) -> Frame:
    return _to_all("settings_updated", event.settings, event.origin)


def _generation_started(event: GenerationStarted) -> Frame:
    """The other devices: the question and typing on, in one write; not the requester."""
    new = encode_event("new_message", {"message": event.question})
    typing = typing_text(event.question.conversation_id, True)
    return Frame((new, typing), event.origin.connection_id, None)


def _generation_finished(event: GenerationFinished) -> Frame:
    final = {
        "conversation_id": event.conversation_id,
        "message_id": event.message_id,
        "token": "",
        "finished": True,
        "finish_reason": event.finish_reason,
    }
    return Frame(encode_event("message_stream", final))


def _answer_saved(event: AnswerSaved) -> Frame:
    typing = typing_text(event.conversation_id, False)
    if event.message is None or event.conversation is None:
        return Frame(typing)
    new = encode_event("new_message", {"message": event.message})
    updated = encode_event("conversation_updated", event.conversation)
    return Frame((new, typing, updated))  # one write per connection


def _request_failed(event: RequestFailed) -> Frame:
    payload = {"code": event.code, "message": event.message, "request_action": event.request_action}
    text = encode_event("error", payload, event.origin.request_id)
    return Frame(None, event.origin.connection_id, text)


_ENCODERS: dict[type[Any], Callable[[Any], Frame]] = {
    ConversationCreated: _conversation_created,
    ConversationUpdated: _conversation_updated,
    ConversationDeleted: _conversation_deleted,
    SettingsChanged: _settings_changed,
    GenerationStarted: _generation_started,
    GenerationFinished: _generation_finished,
    AnswerSaved: _answer_saved,
    RequestFailed: _request_failed,
}
