"""What the server does when its own parts fail: the database mid-stream, a stuck
client, a bug; and how much history it sends."""

from __future__ import annotations

import trio
from support import RawPeer, ask, collect_stream, open_conversation, run_with_fake_azure

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI


async def test_a_database_failing_mid_stream_loses_no_streamed_text(tmp_path, caplog):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=60, rate=100))
    env = {"CHECKPOINT_SECONDS": "0.05"}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _), server.client() as client:
        repository = server.app.db.repository
        real_finish = repository.finish_messages
        failures = {"checkpoint": 0, "finish": 0}

        def broken_checkpoint(*args, **kwargs):
            failures["checkpoint"] += 1
            raise OSError("disk I/O error")

        def flaky_finish(*args, **kwargs):
            failures["finish"] += 1
            if failures["finish"] == 1:
                raise OSError("database is locked")
            return real_finish(*args, **kwargs)

        repository.checkpoint_messages = broken_checkpoint
        repository.finish_messages = flaky_finish
        with trio.fail_after(10):
            stream = await ask(client, "go")
            conversation_id = stream["conversation"]["id"]
            stored = await client.call("get_messages", {"conversation_id": conversation_id})
    assert failures["checkpoint"] >= 1 and failures["finish"] == 2
    assert stream["final"]["finish_reason"] == "stop"
    assert stream["text"] == fake.answer(60)
    assert stored["payload"]["messages"][-1]["content"] == fake.answer(60)
    assert stored["payload"]["messages"][-1]["status"] == "complete"
    assert "checkpoint of 1 answers failed" in caplog.text


async def test_a_stuck_client_is_closed_and_its_answer_interrupted(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=5000, rate=500), words=["y" * 4000])
    env = {"OUTBOX_STALL_SECONDS": "0.5", "HEARTBEAT_TIMEOUT": "3", "HEARTBEAT_INTERVAL": "1"}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _), server.client() as watcher:
        with trio.fail_after(20):
            conversation_id = await open_conversation(watcher)
            stuck = await RawPeer.connect(server.url, server.token)
            await stuck.send_action(
                "send_message", {"conversation_id": conversation_id, "content": "flood me"}
            )
            # It never reads again; the watcher reads everything.
            stream = await collect_stream(watcher, conversation_id)
            upstream = await fake.wait_disconnected(0)
        await stuck.stream.aclose()
    assert stream["final"]["finish_reason"] == "interrupted"
    assert stream["message"]["status"] == "interrupted"
    assert upstream.ended_by == "client" and upstream.tokens_sent < 5000
    figures = server.app.metrics.registry
    assert figures.get_sample_value("pichat_outbox_stalls_total") == 1


async def test_a_failure_inside_the_server_is_an_internal_error(server, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("the disk caught fire")

    server.app.db.repository.list_conversations = broken
    async with server.client() as client:
        with trio.fail_after(5):
            reply = await client.call("get_conversations")
            assert reply["payload"]["code"] == "internal_error"
            assert "fire" not in reply["payload"]["message"]  # details go to the log
            assert (await client.call("ping"))["action"] == "pong"
    assert "the disk caught fire" in caplog.text


async def test_history_is_cut_to_the_budget_newest_first(tmp_path):
    env = {"AI_HISTORY_TOKENS": "300"}
    async with (
        run_with_fake_azure(tmp_path, None, env) as (server, fake),
        server.client() as client,
    ):
        with trio.fail_after(10):
            await client.call("update_settings", {"assistant_personality": "Be brief."})
            conversation_id = await open_conversation(client)
            for i in range(4):
                await client.request(
                    "send_message",
                    {"conversation_id": conversation_id, "content": f"question {i} " + "z" * 300},
                )
                await collect_stream(client, conversation_id)
    sent = fake.requests[-1].body["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[-1]["content"].startswith("question 3")
    assert len(sent) < 1 + 7  # older turns were left out ...
    assert all(not m["content"].startswith("question 0") for m in sent)  # ... oldest first
    assert sum(len(m["content"]) for m in sent) // 4 <= 300 + 100
