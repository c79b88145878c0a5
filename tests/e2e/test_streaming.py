"""Answers streamed from a fake Azure OpenAI over real sockets, as docs/protocol.md says."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing
from support import (
    ask,
    collect_stream,
    make_settings,
    open_conversation,
    run_server,
    run_with_fake_azure,
    send_and_collect,
)

from pichat_trio.domain.events import GenerationStarted
from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI


def _compress(actions: list[str]) -> list[str]:
    """Runs of message_stream frames folded into one entry."""
    out: list[str] = []
    for action in actions:
        if not (out and action == "message_stream" and out[-1] == "message_stream"):
            out.append(action)
    return out


async def test_full_event_sequence_on_requester_and_other_device(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=20, rate=200))
    unpaced = {"FRAME_SECONDS": "0"}  # a frame per token: the count below is exact
    async with run_with_fake_azure(tmp_path, fake, unpaced) as (server, _):  # noqa: SIM117
        async with server.client() as phone, server.client() as pi:
            with trio.fail_after(10):
                conversation_id = await open_conversation(phone)
                await pi.expect("conversation_created")
                request_id = await phone.request(
                    "send_message", {"conversation_id": conversation_id, "content": "Hello?"}
                )
                sent = await phone.receive()
                assert sent["action"] == "message_sent" and sent["request_id"] == request_id
                assert sent["payload"]["role"] == "user"
                assert sent["payload"]["content"] == "Hello?"
                assert sent["payload"]["status"] == "complete"
                mine = await collect_stream(phone, conversation_id)
                seen = await pi.expect("new_message")
                assert seen["payload"]["message"] == sent["payload"]
                theirs = await collect_stream(pi, conversation_id)

    expected = [
        "typing_indicator",
        "message_stream",
        "new_message",
        "typing_indicator",
        "conversation_updated",
    ]
    for stream in (mine, theirs):
        assert _compress(stream["actions"]) == expected
        assert stream["text"] == fake.answer()
        assert stream["message"]["content"] == fake.answer()
        assert stream["message"]["status"] == "complete"
        assert stream["final"]["finish_reason"] == "stop"
        assert stream["final"]["token"] == ""
        assert stream["conversation"]["last_message_at"] is not None
    assert mine["tokens"] == theirs["tokens"]
    # Clients that keep up get one frame per upstream token, then the final one.
    assert len(mine["tokens"]) == fake.behaviour.tokens + 1


@pytest.mark.parametrize("frame_seconds", ["0", "0.1"])
async def test_token_frames_are_paced_and_the_first_goes_at_once(tmp_path, frame_seconds):
    """30 tokens 10 ms apart: a frame each unpaced; with FRAME_SECONDS=0.1 the
    first token still goes alone and at once, the rest merge into a few frames."""
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=30, rate=100))
    env = {"FRAME_SECONDS": frame_seconds}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _):  # noqa: SIM117
        async with server.client() as phone:
            with trio.fail_after(10):
                stream = await ask(phone)
    assert stream["text"] == fake.answer()
    assert stream["tokens"][0] == fake.token(0)
    frames = len(stream["tokens"]) - 1  # the last frame is the empty final one
    if frame_seconds == "0":
        assert frames == 30
    else:
        assert 2 <= frames <= 8, stream["tokens"]


async def test_history_and_personality_reach_upstream(tmp_path):
    async with run_with_fake_azure(tmp_path) as (server, fake), server.client() as client:
        with trio.fail_after(10):
            await client.call("update_settings", {"assistant_personality": "Answer in haiku."})
            conversation_id = await open_conversation(client)
            for text in ("first question", "second question"):
                await client.request(
                    "send_message", {"conversation_id": conversation_id, "content": text}
                )
                await collect_stream(client, conversation_id)
    body = fake.requests[1].body
    assert body["stream"] is True
    assert fake.requests[1].deployment == "gpt-4"
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("system", "Answer in haiku."),
        ("user", "first question"),
        ("assistant", fake.answer()),
        ("user", "second question"),
    ]
    assert "api-key" not in fake.requests[1].headers or fake.requests[1].headers["api-key"] != (
        fake.api_key
    )


async def test_selected_model_picks_the_deployment(tmp_path):
    async with run_with_fake_azure(tmp_path) as (server, fake), server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            await client.call("update_settings", {"selected_model": "gpt-3.5"})
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "hi"}
            )
            await collect_stream(client, conversation_id)
    assert fake.requests[0].deployment == "gpt-35-turbo"


async def test_the_first_message_names_the_conversation(tmp_path):
    async with run_with_fake_azure(tmp_path) as (server, _fake), server.client() as client:
        with trio.fail_after(10):
            reply = await client.call("create_conversation")
            conversation_id = reply["payload"]["id"]
            content = "Where should we travel this summer with two small kids and a dog"
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": content}
            )
            stream = await collect_stream(client, conversation_id)
    title = stream["conversation"]["title"]
    assert title == "Where should we travel this summer with two small kids and a…"
    assert len(title) <= 61


@pytest.mark.parametrize(
    ("marker", "finish", "status", "error_code"),
    [
        ("[fake:filter:3]", "content_filter", "complete", None),
        ("[fake:length]", "length", "complete", None),
        ("[fake:filter]", "error", "error", "upstream_error"),
        ("[fake:401]", "error", "error", "upstream_error"),
        ("[fake:503:9]", "error", "error", "upstream_unavailable"),
        ("[fake:drop:4]", "error", "error", "upstream_unavailable"),
        ("[fake:stall:2]", "error", "error", "upstream_unavailable"),
    ],
)
async def test_upstream_failures_end_the_stream_as_the_protocol_says(
    tmp_path, marker, finish, status, error_code
):
    fake = FakeAzureOpenAI(behaviour=Behaviour(retry_after=0.01))
    env = {"AI_READ_TIMEOUT": "0.3"}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _), server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            request_id = await client.request(
                "send_message", {"conversation_id": conversation_id, "content": f"go {marker}"}
            )
            stream = await collect_stream(client, conversation_id)
            stored = await client.call("get_messages", {"conversation_id": conversation_id})
    assert stream["final"]["finish_reason"] == finish
    assert stream["message"]["status"] == status
    assert stream["message"]["content"] == stream["text"]
    assert stored["payload"]["messages"][-1] == stream["message"]
    errors = [a for a in stream["actions"] if a == "error"]
    if error_code is None:
        assert errors == []
    else:
        assert errors == ["error"]
        # The requester's error carries its request_id and names send_message.
        assert error_code
    if marker == "[fake:drop:4]":
        assert stream["text"] == fake.answer(4)  # what was streamed is kept
    if marker == "[fake:503:9]":
        assert len(fake.requests) == 3  # AI_MAX_ATTEMPTS
    assert request_id


async def test_the_requester_gets_an_error_frame_with_its_request_id(tmp_path):
    async with run_with_fake_azure(tmp_path) as (server, _fake), server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            request_id = await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "[fake:filter]"}
            )
            error = await client.expect("error")
    assert error["request_id"] == request_id
    assert error["payload"]["code"] == "upstream_error"
    assert error["payload"]["request_action"] == "send_message"
    assert "content filter" in error["payload"]["message"]


async def test_a_429_is_retried_after_retry_after(tmp_path):
    fake = FakeAzureOpenAI()
    fake.fail_next(429, retry_after=0.05)
    async with run_with_fake_azure(tmp_path, fake) as (server, _), server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "hi"}
            )
            stream = await collect_stream(client, conversation_id)
    assert stream["final"]["finish_reason"] == "stop"
    assert stream["text"] == fake.answer()
    assert [r.status for r in fake.requests] == [429, 200]
    assert fake.requests[1].started_at - fake.requests[0].started_at >= 0.05


async def test_disconnect_mid_stream_aborts_upstream_and_keeps_the_partial_answer(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=2000, rate=100))
    async with run_with_fake_azure(tmp_path, fake) as (server, _), server.client() as watcher:
        with trio.fail_after(10):
            conversation_id = await open_conversation(watcher)
            async with server.client() as requester:
                await requester.request(
                    "send_message", {"conversation_id": conversation_id, "content": "long one"}
                )
                for _ in range(5):
                    await requester.expect("message_stream")
                await requester.ws.aclose()
            upstream = await fake.wait_disconnected(0)
            stream = await collect_stream(watcher, conversation_id)
    assert upstream.ended_by == "client"
    assert upstream.disconnected_at is not None  # how soon: bench/run.py's abort figure
    assert upstream.tokens_sent < 2000
    assert stream["final"]["finish_reason"] == "interrupted"
    assert stream["message"]["status"] == "interrupted"
    assert stream["message"]["content"] == stream["text"]
    assert fake.answer(2000).startswith(stream["text"]) and len(stream["text"]) > 0


async def test_cancel_generation_stops_the_answer(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=500, rate=100))
    async with run_with_fake_azure(tmp_path, fake) as (server, _), server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "talk"}
            )
            first = await client.expect("message_stream")
            reply = await client.call("cancel_generation", {"conversation_id": conversation_id})
            assert reply["action"] == "generation_cancelled"
            assert reply["payload"] == {
                "conversation_id": conversation_id,
                "message_id": first["payload"]["message_id"],
            }
            stream = await collect_stream(client, conversation_id)
            upstream = await fake.wait_disconnected(0)
            again = await client.call("cancel_generation", {"conversation_id": conversation_id})
    assert stream["final"]["finish_reason"] == "cancelled"
    assert stream["message"]["status"] == "cancelled"
    assert upstream.ended_by == "client" and upstream.tokens_sent < 500
    assert again["payload"]["code"] == "not_found"


async def test_one_generation_per_conversation_and_a_cap_per_connection(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=50, rate=100))
    env = {"MAX_GENERATIONS_PER_CONNECTION": "2"}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _), server.client() as client:
        with trio.fail_after(10):
            first, second, third = [await open_conversation(client) for _ in range(3)]
            await client.call("send_message", {"conversation_id": first, "content": "a"})
            busy = await client.call("send_message", {"conversation_id": first, "content": "b"})
            assert busy["payload"]["code"] == "busy"
            parallel = await client.call(
                "send_message", {"conversation_id": second, "content": "c"}
            )
            assert parallel["action"] == "message_sent"
            capped = await client.call("send_message", {"conversation_id": third, "content": "d"})
            assert capped["payload"].get("code") == "busy", capped
            assert "at most 2" in capped["payload"]["message"]
            # The refused conversation is free again once the cap allows.
            finished: set[str] = set()
            while len(finished) < 2:  # conversation_updated is the last event of an answer
                frame = await client.receive()
                if frame["action"] == "conversation_updated":
                    finished.add(frame["payload"]["id"])
            reply = await client.call("send_message", {"conversation_id": third, "content": "e"})
            assert reply["action"] == "message_sent"
            assert (await collect_stream(client, third))["final"]["finish_reason"] == "stop"
            messages = await client.call("get_messages", {"conversation_id": first})
            assert next(m["content"] for m in messages["payload"]["messages"]) == "a"
            assert len(messages["payload"]["messages"]) == 2


async def test_shutdown_interrupts_answers_and_closes_with_1001(tmp_path):
    from trio_websocket import ConnectionClosed

    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=1000, rate=100))
    env = {"SHUTDOWN_GRACE": "0.2"}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _), server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "x"}
            )
            await client.expect("message_stream")
            server.stop()
            stream = await collect_stream(client, conversation_id)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await client.receive()
    assert stream["final"]["finish_reason"] == "interrupted"
    assert stream["message"]["status"] == "interrupted"
    assert closed.value.reason.code == 1001
    assert fake.requests[0].ended_by == "client"


@pytest.mark.parametrize("provider", ["azure", "openai", "echo"])
async def test_every_provider_streams_through_the_same_path(tmp_path, provider):
    fake = FakeAzureOpenAI()
    env = {"AI_PROVIDER": provider}
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        if provider == "openai":
            env.update(
                OPENAI_BASE_URL=f"{fake.endpoint}/v1",
                OPENAI_API_KEY=fake.api_key,
                AI_MODELS="gpt-4=gpt-4,gpt-3.5=gpt-35-turbo",
            )
        elif provider == "azure":
            env.update(
                AZURE_OPENAI_ENDPOINT=fake.endpoint,
                AZURE_OPENAI_KEY=fake.api_key,
                AZURE_OPENAI_DEPLOYMENT_GPT4="gpt-4",
            )
        async with run_server(make_settings(tmp_path, env)) as server, server.client() as client:
            names = {"azure": "azure-openai", "openai": "openai-compatible", "echo": "echo"}
            assert server.app.chat.model.name == names[provider]
            with trio.fail_after(10):
                conversation_id = await open_conversation(client)
                await client.request(
                    "send_message", {"conversation_id": conversation_id, "content": "Hi there"}
                )
                stream = await collect_stream(client, conversation_id)
        nursery.cancel_scope.cancel()
    assert _compress(stream["actions"]) == [
        "message_sent",
        "typing_indicator",
        "message_stream",
        "new_message",
        "typing_indicator",
        "conversation_updated",
    ]
    assert stream["final"]["finish_reason"] == "stop"
    assert stream["message"]["content"] == stream["text"] and stream["message"]["status"] == (
        "complete"
    )
    if provider == "echo":
        assert stream["text"].startswith("[echo model: no AI service is configured]")
        assert "Hi there" in stream["text"]
        assert fake.requests == []
    else:
        assert stream["text"] == fake.answer()
        assert fake.requests[0].route == provider


async def test_messages_sent_at_the_same_moment_are_all_answered_and_stored(tmp_path):
    """Twelve devices press enter together: the group commit stores every question
    and answer row, and each device gets its own whole answer."""
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=10, rate=200))
    streams: dict[int, dict] = {}
    async with run_with_fake_azure(tmp_path, fake) as (server, _):

        async def device(i: int) -> None:
            async with server.client() as client:
                streams[i] = await ask(client, f"question {i}")

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                for i in range(12):
                    nursery.start_soon(device, i)
        async with server.client() as reader:
            listed = await reader.call("get_conversations", {"limit": 50})
            conversations = listed["payload"]["conversations"]
            stored = []
            for conversation in conversations:
                reply = await reader.call("get_messages", {"conversation_id": conversation["id"]})
                stored.append([m["content"] for m in reply["payload"]["messages"]])
    assert sorted(streams) == list(range(12))
    assert all(s["text"] == fake.answer() for s in streams.values())
    assert sorted(stored) == sorted([f"question {i}", fake.answer()] for i in range(12))
    assert len(fake.requests) == 12


async def test_a_message_sent_right_after_the_final_frame_waits_for_the_store(tmp_path):
    """Once an answer's last frame is out, the conversation is only being stored: the
    next send_message waits for that write instead of getting busy, and its history
    holds the whole first answer."""
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=5, rate=0))
    async with run_with_fake_azure(tmp_path, fake) as (server, _), server.client() as client:
        repository = server.app.db.repository
        real_finish = repository.finish_messages
        gate = threading.Event()

        def held_finish(requests):
            gate.wait(5)  # the first answer's final write, held until the next send is in
            return real_finish(requests)

        repository.finish_messages = held_finish
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            await client.call("send_message", {"conversation_id": conversation_id, "content": "a"})
            while True:  # up to the final frame, not conversation_updated
                frame = await client.receive()
                if frame["action"] == "message_stream" and frame["payload"]["finished"]:
                    break
            second = await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "b"}
            )
            await trio.testing.wait_all_tasks_blocked()  # the send waits on the held write
            gate.set()
            while (reply := await client.receive()).get("request_id") != second:
                pass
            assert reply["action"] == "message_sent", reply
            assert (await collect_stream(client, conversation_id))["final"]["finish_reason"] == (
                "stop"
            )
            stored = await client.call("get_messages", {"conversation_id": conversation_id})
    contents = [m["content"] for m in stored["payload"]["messages"]]
    assert contents == ["a", fake.answer(5), "b", fake.answer(5)]
    history = [m["content"] for m in fake.requests[1].messages if m["role"] != "system"]
    assert history == ["a", fake.answer(5), "b"]


async def test_a_request_after_send_message_is_answered_after_its_store(tmp_path):
    """Frames of one connection are handled in order: a get_messages sent right
    behind a send_message is answered after message_sent and lists the message."""
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=5, rate=50))
    async with run_with_fake_azure(tmp_path, fake) as (server, _), server.client() as client:
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            sent = await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "first"}
            )
            listed = await client.request("get_messages", {"conversation_id": conversation_id})
            order = []
            while True:
                frame = await client.receive()
                if frame.get("request_id") in (sent, listed):
                    order.append(frame["action"])
                if frame.get("request_id") == listed:
                    break
            await collect_stream(client, conversation_id)
    assert order == ["message_sent", "messages_list"]
    contents = [m["content"] for m in frame["payload"]["messages"]]
    assert contents[0] == "first"


class _Rounds(trio.abc.Instrument):
    """Counts the scheduler's rounds (one wait for I/O each)."""

    def __init__(self) -> None:
        self.rounds = 0

    def after_io_wait(self, timeout: float) -> None:
        self.rounds += 1


async def test_an_answer_starts_in_the_round_its_message_is_stored(tmp_path):
    """The answer's task exists before the store ends and is woken by it: its
    upstream call starts one round after the store's thread is seen to end, not
    one more round later behind a task started only then."""
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=3, rate=0))
    rounds = _Rounds()
    async with run_with_fake_azure(tmp_path, fake) as (server, _), server.client() as client:
        repository = server.app.db.repository
        real_start = repository.start_exchanges
        gate = threading.Event()
        stored_at: list[int] = []
        called_at: list[int] = []

        def held_start(requests):
            gate.wait(5)
            result = real_start(requests)
            stored_at.append(rounds.rounds)  # the loop is waiting for I/O: this round is next
            return result

        model = server.app.chat.model
        real_stream = model.stream_reply

        def counted_stream(request):
            called_at.append(rounds.rounds)
            return real_stream(request)

        repository.start_exchanges = held_start
        model.stream_reply = counted_stream
        with trio.fail_after(10):
            conversation_id = await open_conversation(client)
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "x"}
            )
            await trio.testing.wait_all_tasks_blocked()  # the store waits on the gate
            trio.lowlevel.add_instrument(rounds)
            try:
                gate.set()
                await collect_stream(client, conversation_id)
            finally:
                trio.lowlevel.remove_instrument(rounds)
    # Round +1 runs the thread's callback (the group commit wakes the request),
    # round +2 the answer's task, which calls the model.
    assert called_at[0] - stored_at[0] <= 2, (stored_at, called_at)


async def test_a_failure_after_the_store_still_ends_the_answer(tmp_path):
    """If telling the user's other devices fails once the message is stored, the
    answer still gets its final frame and its stored row, and the conversation
    is free for the next message."""
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=3, rate=0))
    async with run_with_fake_azure(tmp_path, fake) as (server, _), server.client() as client:
        hub = server.app.hub
        real_publish = hub.publish
        failures = []

        async def failing_once(user_id, event):
            if isinstance(event, GenerationStarted) and not failures:
                failures.append("new_message")
                raise RuntimeError("the hub is gone")
            await real_publish(user_id, event)

        hub.publish = failing_once
        with trio.fail_after(10):
            first = await ask(client, "a")
            conversation_id = first["conversation"]["id"]
            second = await send_and_collect(client, conversation_id, "b")
            stored = await client.call("get_messages", {"conversation_id": conversation_id})
    assert failures == ["new_message"]
    assert first["final"]["finish_reason"] == "error"
    assert first["message"]["status"] == "error"
    assert second["final"]["finish_reason"] == "stop"
    statuses = [(m["content"], m["status"]) for m in stored["payload"]["messages"]]
    assert statuses == [
        ("a", "complete"),
        ("", "error"),
        ("b", "complete"),
        (fake.answer(3), "complete"),
    ]


class _WriterSpawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.count = 0

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith("Connection._write"):
            self.count += 1


async def test_a_client_that_keeps_up_gets_every_frame_without_a_writer_task(tmp_path):
    """Each frame is written by its producer (the answer's task, the request's reply)
    when nothing is queued: no writer task starts, and the text arrives whole. Tokens
    20 ms apart: none comes within a burst's window of the last (MERGE_SECONDS)."""
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=20, rate=50))
    async with run_with_fake_azure(tmp_path, fake, {"FRAME_SECONDS": "0"}) as (server, _):  # noqa: SIM117
        async with server.client() as phone:
            with trio.fail_after(10):
                conversation_id = await open_conversation(phone)
                spawns = _WriterSpawns()
                trio.lowlevel.add_instrument(spawns)
                try:
                    await phone.request(
                        "send_message", {"conversation_id": conversation_id, "content": "Hi"}
                    )
                    assert (await phone.receive())["action"] == "message_sent"
                    stream = await collect_stream(phone, conversation_id)
                finally:
                    trio.lowlevel.remove_instrument(spawns)
    assert stream["text"] == fake.answer(20)
    assert stream["actions"].count("message_stream") == 21  # a frame per token: none merged
    assert spawns.count == 0
