"""What a hostile or careless client gets over a real socket: its own errors, nothing more.

Another user's streaming conversation is ``not_found`` like an unknown one;
every error a request causes (``rate_limited`` too) names the request;
deep JSON and times out of range are refused in one log line.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from support import add_user, make_settings, open_conversation, run_server

UNKNOWN_ID = "6f9619ff-8b86-d011-b42d-00c04fc964ff"


def _without_request_id(frame: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in frame.items() if key != "request_id"}


async def test_another_users_streaming_conversation_is_not_found_never_busy(tmp_path):
    settings = make_settings(tmp_path, {"ECHO_TOKENS_PER_SECOND": "20"})
    async with run_server(settings) as server:
        bob_token = await add_user(server, "bob")
        async with server.client() as alice, server.client(bob_token) as bob:
            with trio.fail_after(20):
                mine = await open_conversation(alice)
                await alice.request(
                    "send_message", {"conversation_id": mine, "content": "x " * 200}
                )
                await alice.expect("message_stream")  # streaming now, for a good while
                probes = {}
                for target in (mine, UNKNOWN_ID):
                    probes[target] = [
                        await bob.call(
                            "send_message", {"conversation_id": target, "content": "hi"}
                        ),
                        await bob.call("cancel_generation", {"conversation_id": target}),
                    ]
                assert probes[mine][0]["payload"]["code"] == "not_found"
                for theirs, unknown in zip(probes[mine], probes[UNKNOWN_ID], strict=True):
                    assert _without_request_id(theirs) == _without_request_id(unknown)
                # Nothing of bob's reached alice's conversation; her answer still streams.
                assert (await alice.call("cancel_generation", {"conversation_id": mine}))[
                    "action"
                ] == "generation_cancelled"
                listed = await alice.call("get_messages", {"conversation_id": mine})
                assert [m["role"] for m in listed["payload"]["messages"]] == ["user", "assistant"]


async def test_rate_limited_names_its_request(tmp_path):
    settings = make_settings(tmp_path, {"RATE_LIMIT_PER_SECOND": "0.01", "RATE_LIMIT_BURST": "2"})
    async with run_server(settings) as server, server.client() as client:
        with trio.fail_after(10):
            for _ in range(2):
                assert (await client.call("ping"))["action"] == "pong"
            reply = await client.call("get_conversations")  # call() waits for this request_id
            assert reply["action"] == "error"
            assert reply["payload"]["code"] == "rate_limited"
            assert reply["payload"]["request_action"] == "get_conversations"
            assert reply["payload"]["retry_after_ms"] > 0


async def test_errors_of_malformed_requests_name_what_can_be_read(server):
    async with server.client() as client:
        with trio.fail_after(10):
            await client.send_raw('{"action": 7, "request_id": "q1"}')
            reply = await client.expect("error")
            assert reply["request_id"] == "q1"
            assert reply["payload"]["code"] == "invalid_request"
            await client.send_raw('{"action": "ping", "payload": 5, "request_id": "q2"}')
            reply = await client.expect("error")
            assert reply["request_id"] == "q2" and reply["payload"]["request_action"] == "ping"


async def test_deep_json_and_times_out_of_range_are_refused_in_one_log_line(server, caplog):
    caplog.set_level(logging.INFO)
    deep = '{"action": "ping", "request_id": "d1", "payload": {"a": ' + "[" * 1000
    deep += "]" * 1000 + "}}"
    async with server.client() as client:
        with trio.fail_after(10):
            await client.send_raw(deep)
            reply = await client.expect("error")
            assert reply["payload"]["code"] == "invalid_json"
            cases = {
                "0001-01-01T00:00:00+14:00": "payload.before: out of range",
                "9999-12-31T23:59:59-14:00": "payload.before: out of range",
                # Without a zone a time means nothing certain: refused, not read as local.
                "2026-11-24T10:00:00": "payload.before: expected an RFC 3339 time with a zone",
            }
            for before, message in cases.items():
                reply = await client.call("get_conversations", {"before": before})
                assert reply["payload"]["code"] == "invalid_request", reply
                assert reply["payload"]["message"] == message
                assert reply["payload"]["request_action"] == "get_conversations"
            zoned = await client.call("get_conversations", {"before": "2999-01-01T01:00:00+01:00"})
            assert zoned["action"] == "conversations_list"
            assert (await client.call("ping"))["action"] == "pong"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 4, refused
    assert all("\n" not in line for line in refused)
