"""Bad input of every kind: each gets the error docs/protocol.md names; the connection lives."""

from __future__ import annotations

import contextlib

import pytest
import trio
from support import open_conversation

GOOD_ID = "6f9619ff-8b86-d011-b42d-00c04fc964ff"


async def _error(client, frame: str | bytes) -> dict:
    await client.send_raw(frame)
    reply = await client.expect("error")
    pong = await client.call("ping")  # the connection still works
    assert pong["action"] == "pong"
    return reply["payload"]


async def test_frames_that_are_not_requests(server):
    async with server.client() as client:
        with trio.fail_after(5):
            assert (await _error(client, "{not json"))["code"] == "invalid_json"
            assert (await _error(client, "[1, 2]"))["code"] == "invalid_json"
            assert (await _error(client, '"text"'))["code"] == "invalid_json"
            assert (await _error(client, "null"))["code"] == "invalid_json"
            assert (await _error(client, b"\x00\x01binary"))["code"] == "unsupported_frame"
            assert (await _error(client, "{}"))["message"] == "action: required"
            reply = await _error(client, '{"action": 7}')
            assert reply["code"] == "invalid_request" and reply["message"].startswith("action:")
            reply = await _error(client, '{"action": "fly_to_moon", "request_id": "q1"}')
            assert reply["code"] == "unknown_action"
            assert reply["request_action"] == "fly_to_moon"


async def test_request_id_is_echoed_and_checked(server):
    async with server.client() as client:
        with trio.fail_after(5):
            await client.send_raw(
                '{"action": "get_conversation", "payload": {}, "request_id": "abc"}'
            )
            reply = await client.expect("error")
            assert reply["request_id"] == "abc"
            reply = await _error(client, '{"action": "ping", "request_id": "' + "x" * 65 + '"}')
            assert reply["code"] == "invalid_request"
            assert reply["message"].startswith("request_id:")
            reply = await _error(client, '{"action": "ping", "request_id": 5}')
            assert reply["message"].startswith("request_id:")


WRONG_TYPES = [
    ("get_conversations", {"limit": "10"}, "payload.limit"),
    ("get_conversations", {"limit": 0}, "payload.limit"),
    ("get_conversations", {"limit": 201}, "payload.limit"),
    ("get_conversations", {"limit": 1.5}, "payload.limit"),
    ("get_conversations", {"before": "yesterday"}, "payload.before"),
    ("get_conversations", [], "payload"),
    ("create_conversation", {"title": 42}, "payload.title"),
    ("create_conversation", {"title": "t" * 201}, "payload.title"),
    ("create_conversation", "title", "payload"),
    ("get_conversation", {}, "payload.id"),
    ("get_conversation", {"id": 12}, "payload.id"),
    ("get_conversation", {"id": "not-a-uuid"}, "payload.id"),
    ("get_conversation", {"id": GOOD_ID + "0"}, "payload.id"),
    ("update_conversation", {"id": GOOD_ID}, "payload.title"),
    ("update_conversation", {"id": GOOD_ID, "title": None}, "payload.title"),
    ("update_conversation", {"id": GOOD_ID, "title": ["a"]}, "payload.title"),
    ("delete_conversation", {"id": True}, "payload.id"),
    ("send_message", {"content": "hi"}, "payload.conversation_id"),
    ("send_message", {"conversation_id": GOOD_ID}, "payload.content"),
    ("send_message", {"conversation_id": GOOD_ID, "content": ""}, "payload.content"),
    ("send_message", {"conversation_id": GOOD_ID, "content": 5}, "payload.content"),
    ("send_message", {"conversation_id": GOOD_ID, "content": "x" * 32001}, "payload.content"),
    # NUL never comes from a person, and PostgreSQL's text columns cannot hold it.
    ("send_message", {"conversation_id": GOOD_ID, "content": "a\u0000b"}, "payload.content"),
    ("create_conversation", {"title": "t\u0000"}, "payload.title"),
    ("update_settings", {"assistant_personality": "\u0000"}, "payload.assistant_personality"),
    (
        "send_message",
        {"conversation_id": GOOD_ID, "content": "a", "is_audio": "yes"},
        "payload.is_audio",
    ),
    ("get_messages", {"conversation_id": GOOD_ID, "limit": 501}, "payload.limit"),
    ("get_messages", {"conversation_id": GOOD_ID, "limit": -1}, "payload.limit"),
    ("get_messages", {"conversation_id": GOOD_ID, "before": "last"}, "payload.before"),
    ("update_settings", {"selected_model": ["gpt-4"]}, "payload.selected_model"),
    (
        "update_settings",
        {"voice_settings": {"speed": None, "gender": 1}},
        "payload.voice_settings.gender",
    ),
    ("update_settings", {"assistant_personality": 3}, "payload.assistant_personality"),
    ("text_to_speech", {}, "payload.text"),
    ("text_to_speech", {"text": 5}, "payload.text"),
    ("text_to_speech", {"text": "x" * 5001}, "payload.text"),
    ("text_to_speech", {"text": "hi", "format": "ogg"}, "payload.format"),
    ("speech_to_text", {}, "payload.audio_data"),
    ("speech_to_text", {"audio_data": 7}, "payload.audio_data"),
    ("cancel_generation", {"conversation_id": "x"}, "payload.conversation_id"),
]


@pytest.mark.parametrize(("action", "payload", "field"), WRONG_TYPES)
async def test_wrong_types_and_ranges_name_the_field(server, action, payload, field):
    async with server.client() as client:
        with trio.fail_after(5):
            reply = await client.call(action, payload)
            assert reply["action"] == "error"
            assert reply["payload"]["code"] == "invalid_request", reply
            assert reply["payload"]["message"].split(":")[0] == field, reply
            assert reply["payload"]["request_action"] == action
            assert (await client.call("ping"))["action"] == "pong"


async def test_whitespace_message_is_refused_and_nothing_is_stored(server):
    async with server.client() as client:
        with trio.fail_after(5):
            conversation_id = await open_conversation(client)
            reply = await client.call(
                "send_message", {"conversation_id": conversation_id, "content": "  \n "}
            )
            assert reply["payload"]["code"] == "invalid_request"
            assert reply["payload"]["message"].startswith("payload.content:")
            listed = await client.call("get_messages", {"conversation_id": conversation_id})
            assert listed["payload"]["messages"] == []


async def test_unknown_fields_are_ignored(server):
    async with server.client() as client:
        with trio.fail_after(5):
            reply = await client.call("create_conversation", {"title": "ok", "colour": "red"})
            assert reply["action"] == "conversation_created"
            await client.send_raw('{"action": "ping", "extra": 1, "request_id": "z"}')
            assert (await client.expect("pong"))["request_id"] == "z"


async def test_oversized_frame_closes_with_1009_and_others_keep_working(server):
    from support import RawPeer
    from wsproto.events import CloseConnection

    async with server.client() as bystander:
        with trio.fail_after(10):
            await bystander.call("ping")
            offender = await RawPeer.connect(server.url, server.token)
            assert len(server.app.connections) == 2
            big = '{"action": "ping", "payload": {"pad": "' + "x" * (5 * 1024 * 1024) + '"}}'
            async with trio.open_nursery() as nursery:
                nursery.start_soon(offender.send_text, big)
                closes: list[CloseConnection] = []
                while not closes:
                    closes = [e for e in await offender.events() if isinstance(e, CloseConnection)]
                nursery.cancel_scope.cancel()
            assert closes[0].code == 1009
            await offender.stream.aclose()
            assert (await bystander.call("ping"))["action"] == "pong"
            assert await open_conversation(bystander)
            # The offender's connection and work are gone too (polled under fail_after).
            while len(server.app.connections) != 1:  # noqa: ASYNC110
                await trio.sleep(0.01)


async def _flood_until_closed(client, frame: str | bytes) -> tuple[list[dict], int]:
    """Send ``frame`` over and over until the server closes; what came back, and the code."""
    from trio_websocket import ConnectionClosed

    received: list[dict] = []

    async def flood() -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await client.send_raw(frame)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        try:
            while True:
                received.append(await client.receive())
        except ConnectionClosed as closed:
            code = closed.reason.code
        nursery.cancel_scope.cancel()
    return received, code


@pytest.mark.parametrize(
    ("frame", "answer"),
    [('{"action": "ping", "request_id": "p"}', "pong"), (b"\x00\x01", "error")],
    ids=["text", "binary"],
)
async def test_frames_past_the_rate_get_one_rate_limited_then_silence_then_1008(
    tmp_path, frame, answer
):
    from support import make_settings, run_server

    # No refill within the test: exactly the burst is answered.
    env = {"RATE_LIMIT_PER_SECOND": "0.01", "RATE_LIMIT_BURST": "3", "RATE_LIMIT_GRACE": "0.2"}
    async with run_server(make_settings(tmp_path, env)) as running, running.client() as client:
        with trio.fail_after(20):
            received, code = await _flood_until_closed(client, frame)
        assert [f["action"] for f in received] == [answer] * 3 + ["error"], received
        if answer == "error":
            assert {f["payload"]["code"] for f in received[:3]} == {"unsupported_frame"}
        limited = received[3]["payload"]
        assert limited["code"] == "rate_limited"
        assert limited["retry_after_ms"] > 0
        assert code == 1008
        async with running.client() as other:  # the server and other connections are fine
            assert (await other.call("ping"))["action"] == "pong"


async def test_limits_come_from_the_configuration(tmp_path):
    from support import make_settings, run_server

    settings = make_settings(tmp_path, {"MAX_TITLE_CHARS": "10", "MAX_MESSAGE_CHARS": "20"})
    async with run_server(settings) as running, running.client() as client:
        with trio.fail_after(5):
            reply = await client.call("create_conversation", {"title": "x" * 11})
            assert reply["payload"]["message"] == "payload.title: expected `str` of length <= 10"
            conversation_id = await open_conversation(client, "x" * 10)
            reply = await client.call(
                "send_message", {"conversation_id": conversation_id, "content": "y" * 21}
            )
            assert reply["payload"]["code"] == "invalid_request"
            assert reply["payload"]["message"].startswith("payload.content:")
