"""A crash mid-stream, and a client that stops reading while another keeps up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import trio
from support import (
    TOKEN,
    RawPeer,
    collect_stream,
    make_settings,
    open_conversation,
    run_server,
    run_with_fake_azure,
)

from pichat_trio.client import open_client
from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI


async def test_kill_9_mid_stream_keeps_the_last_checkpoint_as_interrupted(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=400, rate=40))
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "API_TOKEN": TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pichat.db'}",
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "AI_PROVIDER": "azure",
        "AZURE_OPENAI_KEY": fake.api_key,
        "AZURE_OPENAI_DEPLOYMENT_GPT4": "gpt-4",
        "CHECKPOINT_SECONDS": "0.2",
        "AUDIO_DIR": str(tmp_path / "audio"),
    }
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        env["AZURE_OPENAI_ENDPOINT"] = fake.endpoint
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "pichat_trio", "serve"],
            env=env,
            cwd=tmp_path,
            stderr=subprocess.PIPE,
        )
        try:
            assert process.stderr is not None
            with trio.fail_after(20):
                log = b""
                while (match := re.search(rb"listening on http://([\d.]+:\d+)", log)) is None:
                    chunk = await process.stderr.receive_some(4096)
                    assert chunk, log.decode()
                    log += chunk
            url = "ws://" + match.group(1).decode()
            async with open_client(url, TOKEN) as client:
                with trio.fail_after(20):
                    conversation_id = await open_conversation(client)
                    await client.request(
                        "send_message", {"conversation_id": conversation_id, "content": "go"}
                    )
                    received = []
                    while len(received) < 30:  # 0.75 s of answer: several checkpoints
                        frame = await client.expect("message_stream")
                        received.append(frame["payload"]["token"])
                    process.send_signal(signal.SIGKILL)
                    await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        nursery.cancel_scope.cancel()

    streamed = "".join(received)
    async with run_server(make_settings(tmp_path)) as server, server.client() as client:
        with trio.fail_after(10):
            reply = await client.call("get_messages", {"conversation_id": conversation_id})
    user, answer = reply["payload"]["messages"]
    assert user["content"] == "go" and user["status"] == "complete"
    assert answer["status"] == "interrupted"
    # Everything up to the last checkpoint survived; nothing that was never streamed.
    assert answer["content"], "no checkpoint was written before the crash"
    assert fake.answer(400).startswith(answer["content"])
    assert len(answer["content"]) >= len("".join(received[:20]))
    assert len(answer["content"]) <= len(fake.answer(400))
    assert streamed.startswith(answer["content"][: len(streamed)])


async def test_a_client_that_stops_reading_does_not_hold_back_one_that_keeps_up(tmp_path):
    # Big tokens, so the silent client's socket buffers fill within the answer.
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=600, rate=300), words=["x" * 8000])
    async with run_with_fake_azure(tmp_path, fake) as (server, _):
        slow = await RawPeer.connect(server.url, server.token)
        async with server.client() as fast:
            with trio.fail_after(20):
                conversation_id = await open_conversation(fast)
                await fast.request(
                    "send_message", {"conversation_id": conversation_id, "content": "big"}
                )
                stream = await collect_stream(fast, conversation_id)
                slow_connection = next(c for c in server.app.connections if len(c.outbox))
                # The fast client has the whole answer while the silent one's frames
                # still wait in its outbox, merged as they came in behind each other.
                assert stream["text"] == "x" * 8000 * 600
                assert stream["final"]["finish_reason"] == "stop"
                assert slow_connection.outbox.merged > 0
                # Once the slow client reads, it gets the same text, in fewer frames.
                answer = fake.answer(600)
                tokens: list[str] = []
                received = 0
                while received < len(answer):
                    for frame in await slow.frames():
                        payload = frame["payload"]
                        if frame["action"] == "message_stream" and not payload["finished"]:
                            tokens.append(payload["token"])
                            received += len(payload["token"])
                assert "".join(tokens) == answer
                assert len(tokens) < len(stream["tokens"]) - 1  # fewer frames than the fast got
        await slow.stream.aclose()
