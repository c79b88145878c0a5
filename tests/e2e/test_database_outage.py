"""The database goes away mid-session and comes back, over a real WebSocket.

The test's own PostgreSQL server is stopped (connections refused) or frozen
with SIGSTOP (nothing answers, as in a network partition) while a client
streams an answer. Requests that need no database are answered at once;
the ones that do get ``unavailable`` within 5 s; ``/readyz`` is 503; the
running stream goes on, and its answer is stored once the server is back;
nothing stored before the outage is lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from private_postgres import PrivatePostgres, private_postgres
from support import make_settings, open_conversation, run_server, send_and_collect

REPLY_SECONDS = 5  # the longest a client waits for its answer during the outage


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


async def _ready(http_url: str) -> int:
    async with httpx.AsyncClient() as http:
        with trio.fail_after(REPLY_SECONDS):
            return (await http.get(f"{http_url}/readyz")).status_code


async def _until_ready(http_url: str) -> None:
    with trio.fail_after(60):
        while True:  # the server's own state, seen from outside: polled
            if await _ready(http_url) == 200:
                return
            await trio.sleep(0.2)


async def _outage_seen_by_clients(
    server: Any, streamer: Any, conversation: str, tokens: list[str]
) -> dict[str, Any]:
    """While the database is away: ping, ``unavailable``, 503, and the stream's end."""
    async with server.client() as other:
        with trio.fail_after(REPLY_SECONDS):
            pong = await other.call("ping", {})
        assert pong["action"] == "pong"
        with trio.fail_after(REPLY_SECONDS):
            reply = await other.call("get_messages", {"conversation_id": conversation})
        assert reply["action"] == "error", reply
        assert reply["payload"]["code"] == "unavailable", reply
        assert reply["payload"]["retry_after_ms"] > 0
        with trio.fail_after(REPLY_SECONDS):
            pong = await other.call("ping", {})
        assert pong["action"] == "pong"
    assert await _ready(server.http_url) == 503
    with trio.fail_after(30):  # the stream goes on, and ends, during the outage
        while True:
            frame = await streamer.receive()
            if frame["action"] == "message_stream":
                tokens.append(frame["payload"]["token"])
                if frame["payload"]["finished"]:
                    break
    final: dict[str, Any] = frame["payload"]
    with trio.fail_after(30):  # its final write meets the outage, and is kept
        while True:
            if len(server.app.chat.unsaved) > 0:
                return final
            await trio.sleep(0.05)


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
async def test_a_database_outage_loses_nothing(
    tmp_path: Path, postgres: PrivatePostgres, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        tmp_path,
        {
            "DATABASE_URL": postgres.url,
            "DB_TIMEOUT": "2",
            "DB_CONNECT_TIMEOUT": "2",
            "DB_POOL_SIZE": "4",
            "ECHO_TOKENS_PER_SECOND": "10",
            "CHECKPOINT_SECONDS": "0.2",
        },
    )
    async with run_server(settings) as server, server.client() as streamer:
        conversation = await open_conversation(streamer, "kept")
        before = await send_and_collect(streamer, conversation, "stored before the outage")
        assert before["message"]["status"] == "complete"

        words = " ".join(f"word{n}" for n in range(30))
        await streamer.request("send_message", {"conversation_id": conversation, "content": words})
        tokens: list[str] = []
        while len(tokens) < 3:  # the answer is streaming
            frame = await streamer.receive()
            if frame["action"] == "message_stream":
                tokens.append(frame["payload"]["token"])
        answer_id = frame["payload"]["message_id"]

        postgres.stop() if fault == "stopped" else postgres.freeze()
        try:
            final = await _outage_seen_by_clients(server, streamer, conversation, tokens)
        finally:
            postgres.start() if fault == "stopped" else postgres.thaw()
        assert final["finish_reason"] == "stop"
        streamed = "".join(tokens)
        assert all(f"word{n}" in streamed for n in range(30))

        await _until_ready(server.http_url)
        stored: dict[str, Any] = {}
        with trio.fail_after(60):  # the kept answer is written once the database is back
            while stored.get("status") != "complete":
                listed = await streamer.call("get_messages", {"conversation_id": conversation})
                if listed["action"] == "messages_list":
                    found = [m for m in listed["payload"]["messages"] if m["id"] == answer_id]
                    stored = found[0] if found else {}
                    contents = [m["content"] for m in listed["payload"]["messages"]]
                    assert "stored before the outage" in contents
                    assert before["message"]["content"] in contents
                await trio.sleep(0.2)
        assert stored["content"] == streamed
    # It was its final write that met the outage, kept and written afterwards:
    kept = [r.getMessage() for r in caplog.records if answer_id in r.getMessage()]
    assert f"answer {answer_id} kept until the database is back" in kept
