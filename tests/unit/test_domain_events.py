"""Domain events: their frames, encoded once per event for all connections, and their wire form."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from pichat_trio.adapters.hub.local import LocalHub
from pichat_trio.domain.events import (
    AnswerSaved,
    ConversationDeleted,
    GenerationStarted,
    Origin,
    RequestFailed,
    TokenAdded,
)
from pichat_trio.domain.wire import event_from_wire, event_to_wire
from pichat_trio.models import Conversation, Message
from pichat_trio.ports import Delivery
from pichat_trio.protocol.encode import frame_of
from pichat_trio.protocol.wire import Frame, TokenFrame

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
QUESTION = Message("m-1", "c-1", "user", "hi", NOW, False, None, "complete")
CONVERSATION = Conversation("c-1", "hi", NOW, NOW, NOW)


class _Recorder:
    def __init__(self, name: str) -> None:
        self.id = name
        self.frames: list[object] = []

    def deliver(self, delivery: Delivery) -> None:
        self.frames.append(frame_of(delivery))


def _decoded(texts: object) -> list[object]:
    assert isinstance(texts, str | tuple)
    return [msgspec.json.decode(t) for t in (texts if isinstance(texts, tuple) else (texts,))]


async def test_one_event_is_encoded_once_for_all_connections_of_its_user() -> None:
    hub = LocalHub()
    a, b, other = _Recorder("a"), _Recorder("b"), _Recorder("x")
    async with hub.subscribe("u", a), hub.subscribe("u", b), hub.subscribe("v", other):
        await hub.publish("u", TokenAdded("u", "c-1", "m-2", "Hel"))
        await hub.publish("u", TokenAdded("u", "c-1", "m-2", "lo"))
    assert a.frames == b.frames and other.frames == []
    first, second = a.frames
    assert first is b.frames[0]  # the same object: one encode
    assert isinstance(first, TokenFrame) and isinstance(second, TokenFrame)
    assert first.prefix is second.prefix  # the envelope's prefix shared by the message
    assert msgspec.json.decode(first.merged(second).text)["payload"] == {
        "conversation_id": "c-1",
        "message_id": "m-2",
        "finished": False,
        "token": "Hello",
    }


def test_the_requester_gets_its_own_copy_or_none() -> None:
    origin = Origin("conn-a", "r-1")
    deleted = frame_of(Delivery(ConversationDeleted("u", origin, "c-1")))
    assert isinstance(deleted, Frame)
    mine, theirs = _decoded(deleted.text_for("conn-a")), _decoded(deleted.text_for("conn-b"))
    assert mine == [
        {"action": "conversation_deleted", "payload": {"id": "c-1"}, "request_id": "r-1"}
    ]
    assert theirs == [{"action": "conversation_deleted", "payload": {"id": "c-1"}}]

    started = frame_of(Delivery(GenerationStarted("u", origin, QUESTION, "m-2")))
    assert isinstance(started, Frame) and started.text_for("conn-a") is None
    new, typing = _decoded(started.text_for("conn-b"))
    assert new["action"] == "new_message" and new["payload"]["message"]["id"] == "m-1"
    assert typing["payload"] == {"conversation_id": "c-1", "is_typing": True}

    failed = frame_of(Delivery(RequestFailed("u", origin, "send_message", "upstream_error", "no")))
    assert isinstance(failed, Frame) and failed.text_for("conn-b") is None
    assert _decoded(failed.text_for("conn-a"))[0]["request_id"] == "r-1"


def test_an_answer_saved_ends_with_three_frames_or_typing_off() -> None:
    saved = frame_of(Delivery(AnswerSaved("u", "c-1", QUESTION, CONVERSATION)))
    assert isinstance(saved, Frame)
    actions = [f["action"] for f in _decoded(saved.text_for("any"))]
    assert actions == ["new_message", "typing_indicator", "conversation_updated"]
    lost = frame_of(Delivery(AnswerSaved("u", "c-1")))
    assert isinstance(lost, Frame)
    assert _decoded(lost.text_for("any")) == [
        {"action": "typing_indicator", "payload": {"conversation_id": "c-1", "is_typing": False}}
    ]


def test_events_survive_their_wire_form() -> None:
    events = [
        TokenAdded("u", "c-1", "m-2", "tok"),
        GenerationStarted("u", Origin("conn-a"), QUESTION, "m-2"),
        AnswerSaved("u", "c-1", QUESTION, CONVERSATION),
    ]
    for event in events:
        wire = event_to_wire(event)
        assert event_from_wire(wire) == event
    assert msgspec.json.decode(event_to_wire(events[0]))["event"] == "token_added"
