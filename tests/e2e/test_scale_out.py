"""Two real server processes on their own loopback ports, one PostgreSQL database, one
private redis-server: what the protocol promises to "all" of a user's connections
holds when the phone is on one instance and the Raspberry Pi on the other."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import trio
from instances import Instance, ready_client, two_instances, until
from private_redis import PrivateRedis, private_redis
from support import collect_stream, open_conversation

from pichat_trio.adapters.ai.echo import ECHO_NOTICE
from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.models import Settings, VoiceSettings

SLOW = {"ECHO_TOKENS_PER_SECOND": "50"}  # an answer that is still streaming while we act


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def _words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def _echo(content: str) -> str:
    return f"{ECHO_NOTICE} You said: {content}"


async def _add_user(database_url: str, name: str) -> str:
    def add() -> str:
        engine = sa.create_engine(database_url, poolclass=sa.NullPool)
        try:
            repository = SqlRepository(engine, Settings("gpt-4", VoiceSettings(), ""))
            [(_, token)] = repository.add_users([name])
            return token
        finally:
            engine.dispose()

    return await trio.to_thread.run_sync(add)


async def _stored(client: Any, conversation_id: str) -> list[dict[str, Any]]:
    reply = await client.call("get_messages", {"conversation_id": conversation_id})
    messages: list[dict[str, Any]] = reply["payload"]["messages"]
    return messages


async def _first_token(client: Any, conversation_id: str) -> dict[str, Any]:
    while True:
        frame = await client.receive()
        payload = frame["payload"]
        if frame["action"] == "message_stream" and payload["conversation_id"] == conversation_id:
            return payload


async def _nothing_queued(client: Any) -> None:
    """The next frame is the answer to a ping: nothing else came to this connection."""
    await client.request("ping", {})
    frame = await client.receive()
    assert frame["action"] == "pong", frame


async def test_events_and_whole_streams_reach_the_other_instance_and_no_other_user(
    tmp_path: Path, fresh_postgres: str, redis: PrivateRedis
) -> None:
    async with two_instances(tmp_path, fresh_postgres, redis.url) as (a, b):
        bob = await _add_user(fresh_postgres, "bob")
        async with (
            a.client() as phone,
            b.client() as pi,
            a.client(bob) as bob_a,
            b.client(bob) as bob_b,
        ):
            for client in (phone, pi, bob_a, bob_b):
                await ready_client(client)
            with trio.fail_after(30):
                conversation_id = await open_conversation(phone, "first")
                created = await pi.expect("conversation_created")
                assert created["payload"]["id"] == conversation_id
                assert "request_id" not in created

                await phone.call("update_conversation", {"id": conversation_id, "title": "new"})
                updated = await pi.expect("conversation_updated")
                assert updated["payload"]["title"] == "new"

                await phone.call("update_settings", {"assistant_personality": "Be brief."})
                settings = await pi.expect("settings_updated")
                assert settings["payload"]["assistant_personality"] == "Be brief."

                content = _words(300)
                await phone.request(
                    "send_message", {"conversation_id": conversation_id, "content": content}
                )
                here = await collect_stream(phone, conversation_id)
                there = await collect_stream(pi, conversation_id)
                assert here["text"] == there["text"] == _echo(content)
                assert there["final"]["finish_reason"] == "stop"
                assert there["message"]["content"] == _echo(content)
                assert there["message"]["status"] == "complete"
                assert there["actions"][:2] == ["new_message", "typing_indicator"]
                assert there["actions"][-3:] == [
                    "new_message",
                    "typing_indicator",
                    "conversation_updated",
                ]

                await pi.call("delete_conversation", {"id": conversation_id})
                deleted = await phone.expect("conversation_deleted")
                assert deleted["payload"]["id"] == conversation_id

                await _nothing_queued(bob_a)
                await _nothing_queued(bob_b)
                # Bob's own events still cross, and only to Bob.
                bobs = await open_conversation(bob_b, "bob's")
                seen = await bob_a.expect("conversation_created")
                assert seen["payload"]["id"] == bobs
                await _nothing_queued(phone)
                await _nothing_queued(pi)
        for instance in (a, b):
            assert await instance.metric("pichat_backplane_up") == 1


@asynccontextmanager
async def _streaming_from_a(
    tmp_path: Path, database_url: str, redis: PrivateRedis, words: int = 400
) -> AsyncIterator[tuple[Instance, Instance, Any, Any, dict[str, Any]]]:
    """A phone on instance A, a Pi on B, and a long answer (to ``_words(words)``) A
    streams: the Pi has its first token. Yields A, B, the phone, the Pi, that token; the
    block has 60 seconds."""
    async with (
        two_instances(tmp_path, database_url, redis.url, SLOW) as (a, b),
        a.client() as phone,
        b.client() as pi,
    ):
        await ready_client(phone)
        await ready_client(pi)
        with trio.fail_after(30):
            conversation_id = await open_conversation(phone)
            await phone.request(
                "send_message", {"conversation_id": conversation_id, "content": _words(words)}
            )
            token = await _first_token(pi, conversation_id)
        with trio.fail_after(60):
            yield a, b, phone, pi, token


async def test_cancel_reaches_the_instance_that_runs_the_answer(
    tmp_path: Path, fresh_postgres: str, redis: PrivateRedis
) -> None:
    async with _streaming_from_a(tmp_path, fresh_postgres, redis) as (_, _, phone, pi, token):
        conversation_id = token["conversation_id"]
        reply = await pi.call("cancel_generation", {"conversation_id": conversation_id})
        assert reply["action"] == "generation_cancelled", reply
        assert reply["payload"]["message_id"] == token["message_id"]
        stream = await collect_stream(phone, conversation_id)
        assert stream["final"]["finish_reason"] == "cancelled"
        assert stream["message"]["status"] == "cancelled"
        # Nothing runs there any more: a second cancel, from either side, finds nothing.
        for client in (pi, phone):
            again = await client.call("cancel_generation", {"conversation_id": conversation_id})
            assert again["payload"]["code"] == "not_found", again


async def test_deleting_a_conversation_stops_its_answer_on_the_other_instance(
    tmp_path: Path, fresh_postgres: str, redis: PrivateRedis
) -> None:
    async with _streaming_from_a(tmp_path, fresh_postgres, redis) as (_, _, phone, pi, token):
        conversation_id = token["conversation_id"]
        await pi.call("delete_conversation", {"id": conversation_id})
        while True:  # the answer A runs ends, cancelled, long before its 400 tokens
            frame = await phone.receive()
            payload = frame["payload"]
            if frame["action"] == "message_stream" and payload["finished"]:
                break
        assert payload["finish_reason"] == "cancelled"
        assert payload["message_id"] == token["message_id"]


async def test_one_answer_per_conversation_across_instances(
    tmp_path: Path, fresh_postgres: str, redis: PrivateRedis
) -> None:
    async with _streaming_from_a(tmp_path, fresh_postgres, redis) as (_, _, phone, pi, token):
        conversation_id = token["conversation_id"]
        refused = await pi.call(
            "send_message", {"conversation_id": conversation_id, "content": "me too"}
        )
        assert refused["action"] == "error" and refused["payload"]["code"] == "busy", refused
        await phone.call("cancel_generation", {"conversation_id": conversation_id})
        await collect_stream(phone, conversation_id)
        await collect_stream(pi, conversation_id)
        # Once the answer is stored its lease is gone: the other instance may answer.
        reply = await pi.call(
            "send_message", {"conversation_id": conversation_id, "content": "now me"}
        )
        assert reply["action"] == "message_sent", reply
        stream = await collect_stream(pi, conversation_id)
        assert stream["text"] == _echo("now me")


async def test_a_killed_instance_loses_only_its_own_answers(
    tmp_path: Path, fresh_postgres: str, redis: PrivateRedis
) -> None:
    async with (
        two_instances(tmp_path, fresh_postgres, redis.url, SLOW) as (a, b),
        b.client() as pi,
    ):
        await ready_client(pi)
        async with a.client() as phone:
            await ready_client(phone)
            with trio.fail_after(30):
                on_a = await open_conversation(phone, "on a")
                on_b = await open_conversation(pi, "on b")
                await phone.request(
                    "send_message", {"conversation_id": on_a, "content": _words(600)}
                )
                await pi.request("send_message", {"conversation_id": on_b, "content": _words(600)})
                await _first_token(pi, on_a)
                await _first_token(pi, on_b)
                a.kill()
                assert a.process is not None
                await a.process.wait()

        async def interrupted() -> bool:
            return (await _stored(pi, on_a))[-1]["status"] == "interrupted"

        await until(interrupted)  # B's sweep saw A stop beating
        assert (await _stored(pi, on_b))[-1]["status"] == "streaming"

        async def free() -> bool:  # A's lease expires: the conversation can be answered
            reply = await pi.call("send_message", {"conversation_id": on_a, "content": "again"})
            return bool(reply["action"] == "message_sent")

        await until(free, every=0.2)
        with trio.fail_after(60):
            retried = await collect_stream(pi, on_a)  # short: it ends long before on_b
            assert retried["text"] == _echo("again")
            survivor = await collect_stream(pi, on_b)
            assert survivor["final"]["finish_reason"] == "stop"
            assert survivor["message"]["status"] == "complete"
            assert survivor["message"]["content"] == _echo(_words(600))
    assert any("answers of a stopped instance marked interrupted" in line for line in b.lines)


async def test_a_redis_outage_stops_only_cross_instance_delivery(
    tmp_path: Path, fresh_postgres: str, redis: PrivateRedis
) -> None:
    content = _words(300)
    streaming = _streaming_from_a(tmp_path, fresh_postgres, redis, 300)
    async with streaming as (a, b, phone, pi, token):
        conversation_id = token["conversation_id"]
        with trio.fail_after(60):
            await trio.to_thread.run_sync(redis.stop)
            await _until_metric(a, "pichat_backplane_up", 0)
            await _until_metric(b, "pichat_backplane_up", 0)
            # The requester's own device gets the whole answer; the instances stay ready.
            own = await collect_stream(phone, conversation_id)
            assert own["text"] == _echo(content)
            for instance in (a, b):
                assert (await instance.get("/readyz")).status_code == 200
            # Its own requests keep working too, on either instance.
            second = await open_conversation(phone, "during the outage")
            await phone.request("send_message", {"conversation_id": second, "content": "hi"})
            assert (await collect_stream(phone, second))["text"] == _echo("hi")
            assert await a.metric("pichat_backplane_dropped_events_total") > 0

            await trio.to_thread.run_sync(redis.start)
            await _until_metric(a, "pichat_backplane_up", 1)
            await _until_metric(b, "pichat_backplane_up", 1)
            third = await open_conversation(phone, "after")
            created = await _skip_to(pi, "conversation_created", third)
            assert created["payload"]["title"] == "after"
            await phone.request("send_message", {"conversation_id": third, "content": content})
            there = await collect_stream(pi, third)
            assert there["text"] == _echo(content)
            for instance in (a, b):
                assert await instance.metric("pichat_backplane_outages_total") == 1
    for instance in (a, b):
        warnings = [
            line for line in instance.lines if "backplane" in line and "unreachable" in line
        ]
        assert len(warnings) == 1, warnings
        assert any("is back" in line for line in instance.lines)


async def _until_metric(instance: Instance, name: str, value: float) -> None:
    async def reached() -> bool:
        return await instance.metric(name) == value

    await until(reached)


async def _skip_to(client: Any, action: str, identifier: str) -> dict[str, Any]:
    """The frame ``action`` about ``identifier``, past what came before it (the outage's
    frames that never crossed leave the other device behind: it reloads, as after a
    reconnection)."""
    while True:
        frame = await client.receive()
        if frame["action"] == action and frame["payload"].get("id") == identifier:
            return frame
