"""What a hostile or careless client gets over a real socket: its own errors, nothing more.

Another user's streaming conversation is ``not_found`` like an unknown one.
"""

from __future__ import annotations

from typing import Any

import trio
from support import make_settings, open_conversation, run_server

UNKNOWN_ID = "6f9619ff-8b86-d011-b42d-00c04fc964ff"


def _without_request_id(frame: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in frame.items() if key != "request_id"}


async def _add_user(server: Any, name: str) -> str:
    db = server.app.db
    [(_, token)] = await db.run(db.repository.add_users, [name])
    return str(token)


async def test_another_users_streaming_conversation_is_not_found_never_busy(tmp_path):
    settings = make_settings(tmp_path, {"ECHO_TOKENS_PER_SECOND": "20"})
    async with run_server(settings) as server:
        bob_token = await _add_user(server, "bob")
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

