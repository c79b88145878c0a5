"""Settings, fan-out between a user's devices, and isolation between users."""

from __future__ import annotations

import trio
from support import open_conversation

from pichat_trio.client import open_client


async def test_settings_default_and_partial_update(server):
    async with server.client() as client:
        with trio.fail_after(5):
            current = (await client.call("get_settings"))["payload"]
            assert current["selected_model"] == "gpt-4"
            assert current["voice_settings"] == {
                "gender": "female",
                "accent": "american",
                "speed": 1.0,
            }
            reply = await client.call(
                "update_settings", {"voice_settings": {"accent": "polish", "speed": 1.5}}
            )
            assert reply["action"] == "settings_updated"
            updated = reply["payload"]
            assert updated["voice_settings"] == {
                "gender": "female",
                "accent": "polish",
                "speed": 1.5,
            }
            assert updated["selected_model"] == current["selected_model"]
            assert updated["assistant_personality"] == current["assistant_personality"]
            reply = await client.call("update_settings", {"selected_model": "gpt-3.5"})
            assert reply["payload"]["selected_model"] == "gpt-3.5"
            assert reply["payload"]["voice_settings"]["accent"] == "polish"
            assert (await client.call("get_settings"))["payload"] == reply["payload"]


async def test_settings_validation_names_the_field(server):
    cases = [
        ({"selected_model": "gpt-5"}, "payload.selected_model"),
        ({"selected_model": 4}, "payload.selected_model"),
        ({"voice_settings": {"gender": "robot"}}, "payload.voice_settings.gender"),
        ({"voice_settings": {"accent": "martian"}}, "payload.voice_settings.accent"),
        ({"voice_settings": {"speed": 2.5}}, "payload.voice_settings.speed"),
        ({"voice_settings": {"speed": 0.49}}, "payload.voice_settings.speed"),
        ({"voice_settings": {"speed": "fast"}}, "payload.voice_settings.speed"),
        ({"voice_settings": "loud"}, "payload.voice_settings"),
        ({"assistant_personality": "x" * 4001}, "payload.assistant_personality"),
    ]
    async with server.client() as client:
        with trio.fail_after(5):
            before = (await client.call("get_settings"))["payload"]
            for payload, field in cases:
                reply = await client.call("update_settings", payload)
                assert reply["action"] == "error", payload
                assert reply["payload"]["code"] == "invalid_request"
                assert reply["payload"]["message"].startswith(field + ":"), reply
            assert (await client.call("get_settings"))["payload"] == before


async def test_events_reach_every_device_of_the_user(server):
    async with server.client() as phone, server.client() as pi:
        with trio.fail_after(5):
            await phone.call("ping")
            await pi.call("ping")
            mine = await phone.call("create_conversation", {"title": "Shared"})
            theirs = await pi.expect("conversation_created")
            assert "request_id" not in theirs
            assert theirs["payload"] == mine["payload"]
            conversation_id = mine["payload"]["id"]

            await pi.call("update_conversation", {"id": conversation_id, "title": "Renamed"})
            seen = await phone.expect("conversation_updated")
            assert seen["payload"]["title"] == "Renamed" and "request_id" not in seen

            await phone.call("update_settings", {"voice_settings": {"gender": "male"}})
            seen = await pi.expect("settings_updated")
            assert seen["payload"]["voice_settings"]["gender"] == "male"

            sent = await phone.call(
                "send_message", {"conversation_id": conversation_id, "content": "hi all"}
            )
            assert sent["action"] == "message_sent"
            seen = await pi.expect("new_message")
            assert seen["payload"]["message"] == sent["payload"]

            await pi.call("delete_conversation", {"id": conversation_id})
            seen = await phone.expect("conversation_deleted")
            assert seen["payload"] == {"id": conversation_id}


async def test_users_see_nothing_of_each_other(server):
    (_, alice_token), (_, bob_token) = server.app.db.repository.add_users(["alice", "bob"])
    async with open_client(server.url, alice_token) as a, open_client(server.url, bob_token) as b:
        with trio.fail_after(5):
            conversation_id = await open_conversation(a, "Alice's")
            await a.request("send_message", {"conversation_id": conversation_id, "content": "x"})
            await a.expect("conversation_updated")
            listed = await b.call("get_conversations")
            assert listed["payload"]["conversations"] == []
            for action, payload in [
                ("get_conversation", {"id": conversation_id}),
                ("update_conversation", {"id": conversation_id, "title": "mine now"}),
                ("delete_conversation", {"id": conversation_id}),
                ("get_messages", {"conversation_id": conversation_id}),
                ("send_message", {"conversation_id": conversation_id, "content": "hi"}),
            ]:
                reply = await b.call(action, payload)
                assert reply["payload"]["code"] == "not_found", (action, reply)
            await b.call("update_settings", {"assistant_personality": "Bob's"})
            # Alice heard nothing of Bob: events are queued before replies, so the
            # next frame she gets is the answer to her ping.
            await a.request("ping")
            assert (await a.receive())["action"] == "pong"
            mine = await a.call("get_conversation", {"id": conversation_id})
            assert mine["payload"]["title"] == "Alice's"
            assert (await a.call("get_settings"))["payload"]["assistant_personality"] != "Bob's"
