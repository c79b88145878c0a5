"""Production logs: one JSON object per stderr line, with the ids, and never a token.

The real ``pichat serve`` runs as a child process (so its logging is set up
exactly as in production), its AI pointed at the fake Azure OpenAI in this
process.
"""

from __future__ import annotations

import json
import os
import sys

import trio
from support import collect_stream, handshake_status, open_conversation, run_server_process

from pichat_trio.client import open_client
from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI

TOKEN = "prod-token-0123456789abcdef"
WRONG = "wrong-token-9876543210fedcba"
METRICS_TOKEN = "metrics-token-0123456789"
FIELDS = ("time", "level", "logger", "message")
IDS = ("connection_id", "user_id", "request_id", "conversation_id", "upstream_request_id")


async def _exercise(ws_url: str) -> str:
    """Refused handshakes (query and header), the token in each place, and one answer."""
    with trio.fail_after(30):
        assert await handshake_status(f"{ws_url}/ws?token={WRONG}") == 401
        bearer = [("Authorization", f"Bearer {WRONG}")]
        assert await handshake_status(f"{ws_url}/ws", bearer) == 401
        async with open_client(ws_url, TOKEN) as by_query:
            assert (await by_query.call("ping"))["action"] == "pong"
        async with open_client(ws_url, TOKEN, use_header=True) as client:
            conversation_id = await open_conversation(client)
            await client.request(
                "send_message",
                {"conversation_id": conversation_id, "content": "hi"},
                request_id="r-logged-1",
            )
            answer = await collect_stream(client, conversation_id)
            assert answer["final"]["finish_reason"] == "stop"
    return conversation_id


async def test_production_lines_are_json_with_ids_and_no_token(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=5, rate=0))
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "API_TOKEN": TOKEN,
        "METRICS_TOKEN": METRICS_TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pichat.db'}",
        "AUDIO_DIR": str(tmp_path / "audio"),
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "AI_PROVIDER": "azure",
        "AZURE_OPENAI_KEY": fake.api_key,
        "AZURE_OPENAI_DEPLOYMENT_GPT4": "gpt-4",
        "AI_PRECONNECT": "0",
        "LOG_LEVEL": "INFO",
    }
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        env["AZURE_OPENAI_ENDPOINT"] = fake.endpoint
        argv = [sys.executable, "-m", "pichat_trio", "serve"]
        async with run_server_process(argv, env, tmp_path) as server:
            conversation_id = await _exercise(server.url.replace("http", "ws", 1))
        nursery.cancel_scope.cancel()

    assert server.status == 0
    lines = server.lines
    assert lines, "the server logged nothing"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    for record in records:
        assert all(isinstance(record[field], str) for field in FIELDS), record
        assert record["time"].endswith("Z")
    text = "\n".join(lines)
    for secret in (TOKEN, WRONG, METRICS_TOKEN):
        assert secret not in text
    messages = [record["message"] for record in records]
    assert any(m.startswith("PiChat 0.1.0 starting") for m in messages)
    assert any("SQLite in production" in m for m in messages)
    ended = [r for r in records if r["message"].startswith("answer ") and "ended" in r["message"]]
    assert len(ended) == 1
    assert all(ended[0].get(field) for field in IDS), ended[0]
    assert ended[0]["request_id"] == "r-logged-1"
    assert ended[0]["conversation_id"] == conversation_id
    assert ended[0]["upstream_request_id"].startswith("fake-")
    access = [r for r in records if r["logger"] == "hypercorn.access"]
    assert any(" 401 " in r["message"] for r in access)  # the refused handshakes are logged
