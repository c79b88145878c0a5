"""Conversations and messages over a real WebSocket, stored in a real SQLite file."""

from __future__ import annotations

import uuid

import trio
from support import open_conversation

from pichat_trio.adapters.sql.repository import SqlRepository


async def test_create_get_update_delete(server):
    async with server.client() as client:
        with trio.fail_after(5):
            created = await client.call("create_conversation", {"title": "Plans"})
            assert created["action"] == "conversation_created"
            conversation = created["payload"]
            assert set(conversation) == {
                "id",
                "title",
                "created_at",
                "updated_at",
                "last_message_at",
            }
            assert conversation["title"] == "Plans"
            assert conversation["last_message_at"] is None
            assert conversation["created_at"].endswith("Z")
            assert str(uuid.UUID(conversation["id"])) == conversation["id"]

            got = await client.call("get_conversation", {"id": conversation["id"]})
            assert got["action"] == "conversation" and got["payload"] == conversation

            renamed = await client.call(
                "update_conversation", {"id": conversation["id"], "title": "Trips"}
            )
            assert renamed["action"] == "conversation_updated"
            assert renamed["payload"]["title"] == "Trips"
            assert renamed["payload"]["updated_at"] >= conversation["updated_at"]

            deleted = await client.call("delete_conversation", {"id": conversation["id"]})
            assert deleted == {
                "action": "conversation_deleted",
                "payload": {"id": conversation["id"]},
                "request_id": deleted["request_id"],
            }
            gone = await client.call("get_conversation", {"id": conversation["id"]})
            assert gone["action"] == "error" and gone["payload"]["code"] == "not_found"
            assert gone["payload"]["request_action"] == "get_conversation"


async def test_default_title_and_no_payload(server):
    async with server.client() as client:
        with trio.fail_after(5):
            reply = await client.call("create_conversation")
            assert reply["payload"]["title"] == "New conversation"
            reply = await client.call("create_conversation", {"title": "   "})
            assert reply["payload"]["title"] == "New conversation"


async def test_list_is_newest_activity_first_with_limit_and_before(server):
    async with server.client() as client:
        with trio.fail_after(5):
            ids = [await open_conversation(client, f"c{i}") for i in range(5)]
            # Activity on the oldest one moves it to the front.
            await client.call("update_conversation", {"id": ids[0], "title": "c0 again"})
            listed = await client.call("get_conversations")
            order = [c["id"] for c in listed["payload"]["conversations"]]
            assert order == [ids[0], ids[4], ids[3], ids[2], ids[1]]

            page = await client.call("get_conversations", {"limit": 2})
            first = page["payload"]["conversations"]
            assert [c["id"] for c in first] == order[:2]
            rest = await client.call(
                "get_conversations", {"limit": 10, "before": first[-1]["updated_at"]}
            )
            assert [c["id"] for c in rest["payload"]["conversations"]] == order[2:]


async def test_messages_pagination_and_delete_removes_them(server):
    async with server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            for i in range(3):
                await client.request(
                    "send_message", {"conversation_id": conversation_id, "content": f"hello {i}"}
                )
                await client.expect("conversation_updated")
            everything = await client.call("get_messages", {"conversation_id": conversation_id})
            messages = everything["payload"]["messages"]
            assert everything["payload"]["has_more"] is False
            assert [m["role"] for m in messages] == ["user", "assistant"] * 3
            assert [m["content"] for m in messages[::2]] == ["hello 0", "hello 1", "hello 2"]
            assert all(m["status"] == "complete" for m in messages)
            assert set(messages[0]) == {
                "id",
                "conversation_id",
                "role",
                "content",
                "created_at",
                "is_audio",
                "audio_file",
                "status",
            }

            last_two = await client.call(
                "get_messages", {"conversation_id": conversation_id, "limit": 2}
            )
            assert last_two["payload"]["messages"] == messages[-2:]
            assert last_two["payload"]["has_more"] is True
            earlier = await client.call(
                "get_messages",
                {"conversation_id": conversation_id, "limit": 3, "before": messages[-2]["id"]},
            )
            assert earlier["payload"]["messages"] == messages[1:4]
            assert earlier["payload"]["has_more"] is True

            await client.call("delete_conversation", {"id": conversation_id})
            repository: SqlRepository = server.app.db.repository
            with repository.engine.connect() as connection:
                left = connection.exec_driver_sql(
                    "SELECT count(*) FROM messages WHERE conversation_id = ?", (conversation_id,)
                ).scalar()
            assert left == 0


async def test_unknown_ids_are_not_found(server):
    missing = str(uuid.uuid4())
    async with server.client() as client:
        with trio.fail_after(5):
            for action, payload in [
                ("get_conversation", {"id": missing}),
                ("update_conversation", {"id": missing, "title": "x"}),
                ("delete_conversation", {"id": missing}),
                ("get_messages", {"conversation_id": missing}),
                ("send_message", {"conversation_id": missing, "content": "hi"}),
                ("cancel_generation", {"conversation_id": missing}),
            ]:
                reply = await client.call(action, payload)
                assert reply["action"] == "error", (action, reply)
                assert reply["payload"]["code"] == "not_found", (action, reply)
            conversation_id = await open_conversation(client)
            reply = await client.call(
                "get_messages", {"conversation_id": conversation_id, "before": missing}
            )
            assert reply["payload"]["code"] == "not_found"


async def test_data_survives_a_restart(tmp_path):
    from support import make_settings, run_server

    settings = make_settings(tmp_path)
    async with run_server(settings) as running, running.client() as client:
        with trio.fail_after(5):
            conversation_id = await open_conversation(client, "Keep me")
            await client.call("update_settings", {"assistant_personality": "Be brief."})
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "remember"}
            )
            await client.expect("conversation_updated")
    async with run_server(settings) as running, running.client() as client:
        with trio.fail_after(5):
            listed = await client.call("get_conversations")
            titles = [c["title"] for c in listed["payload"]["conversations"]]
            assert titles == ["Keep me"]
            messages = await client.call("get_messages", {"conversation_id": conversation_id})
            assert messages["payload"]["messages"][0]["content"] == "remember"
            settings_reply = await client.call("get_settings")
            assert settings_reply["payload"]["assistant_personality"] == "Be brief."
