"""Limits per user over all of its devices: connections, answers at once, requests."""

from __future__ import annotations

import trio
import trio.testing
from support import add_user, handshake_status, make_settings, open_conversation, run_server


async def test_a_handshake_over_the_users_connection_cap_gets_429(tmp_path):
    settings = make_settings(tmp_path, {"MAX_CONNECTIONS_PER_USER": "2"})
    async with run_server(settings) as server:
        bob_token = await add_user(server, "bob")
        with trio.fail_after(20):
            async with server.client() as first, server.client() as second:
                assert await handshake_status(f"{server.url}/ws?token={server.token}") == 429
                async with server.client(bob_token) as bob:  # another user is not counted
                    assert (await bob.call("ping"))["action"] == "pong"
                for client in (first, second):
                    assert (await client.call("ping"))["action"] == "pong"
                await second.ws.aclose()
                # The server in this process sees the disconnect once its tasks have run
                # (no thread is involved in a close).
                await trio.testing.wait_all_tasks_blocked(cushion=0.05)
                user_id = next(iter(server.app.connections)).user.id
                assert server.app.user_limits.connections(user_id) == 1
                async with server.client() as third:  # a freed place is taken again
                    assert (await third.call("ping"))["action"] == "pong"


async def test_answers_at_once_are_capped_per_user_with_busy(tmp_path):
    env = {
        "MAX_GENERATIONS_PER_USER": "2",
        "MAX_GENERATIONS_PER_CONNECTION": "4",
        "ECHO_TOKENS_PER_SECOND": "20",
    }
    async with run_server(make_settings(tmp_path, env)) as server:
        bob_token = await add_user(server, "bob")
        async with server.client() as phone, server.client() as laptop:
            with trio.fail_after(30):
                conversations = [await open_conversation(phone, f"c{i}") for i in range(3)]
                long = "word " * 300
                for client, conversation_id in zip((phone, laptop), conversations, strict=False):
                    reply = await client.call(
                        "send_message", {"conversation_id": conversation_id, "content": long}
                    )
                    assert reply["action"] == "message_sent"
                refused = await laptop.call(
                    "send_message", {"conversation_id": conversations[2], "content": "hi"}
                )
                assert refused["action"] == "error"
                assert refused["payload"]["code"] == "busy"
                assert refused["payload"]["request_action"] == "send_message"
                listed = await laptop.call("get_messages", {"conversation_id": conversations[2]})
                assert listed["payload"]["messages"] == []  # nothing was stored
                async with server.client(bob_token) as bob:  # another user's answers go on
                    theirs = await open_conversation(bob)
                    reply = await bob.call(
                        "send_message", {"conversation_id": theirs, "content": "a"}
                    )
                    assert reply["action"] == "message_sent"
                # One answer ends: the user may start another.
                await phone.call("cancel_generation", {"conversation_id": conversations[0]})
                while True:  # the answer is stored and its place free once this goes out
                    frame = await phone.expect("conversation_updated")
                    if frame["payload"]["id"] == conversations[0]:
                        break
                reply = await laptop.call(
                    "send_message", {"conversation_id": conversations[2], "content": "hi"}
                )
                assert reply["action"] == "message_sent"
                for conversation_id in conversations[1:]:
                    await laptop.call("cancel_generation", {"conversation_id": conversation_id})


async def test_the_request_budget_is_shared_by_a_users_devices(tmp_path):
    env = {"USER_RATE_LIMIT_PER_SECOND": "0.01", "USER_RATE_LIMIT_BURST": "4"}
    async with run_server(make_settings(tmp_path, env)) as server:
        bob_token = await add_user(server, "bob")
        async with server.client() as one, server.client() as two, server.client(bob_token) as bob:
            with trio.fail_after(10):
                for client in (one, two, one, two):
                    assert (await client.call("ping"))["action"] == "pong"
                for client in (one, two):  # each connection is far inside its own budget
                    reply = await client.call("ping")
                    assert reply["payload"]["code"] == "rate_limited"
                    assert reply["payload"]["request_action"] == "ping"
                    assert reply["payload"]["retry_after_ms"] > 0
                assert (await bob.call("ping"))["action"] == "pong"
