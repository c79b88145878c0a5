"""``pichat users revoke`` in another process closes that user's live connections (1008)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio
from support import TOKEN, make_settings, open_conversation, run_server
from trio_websocket import ConnectionClosed

from pichat_trio.settings import VARIABLES


async def _pichat(tmp_path: Path, *args: str) -> str:
    """``pichat ARGS`` as an operator runs it, on the test server's database."""
    known = {variable.name for variable in VARIABLES}
    env = {k: v for k, v in os.environ.items() if k not in known}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'pichat.db'}",
            "API_TOKEN": TOKEN,
            "ENVIRONMENT": "development",
        }
    )
    done = await trio.run_process(
        [sys.executable, "-m", "pichat_trio", *args],
        cwd=tmp_path,
        env=env,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return str(done.stdout.decode())


async def test_revoking_a_token_closes_the_users_live_connections_with_1008(tmp_path):
    settings = make_settings(tmp_path, {"ECHO_TOKENS_PER_SECOND": "20"})
    async with run_server(settings) as server:
        with trio.fail_after(60):
            [line] = (await _pichat(tmp_path, "users", "add", "carol")).splitlines()
            name, carol_token = line.split()
            assert name == "carol"
            async with (
                server.client(carol_token) as phone,
                server.client(carol_token) as laptop,
                server.client() as someone_else,
            ):
                conversation_id = await open_conversation(phone)
                await phone.request(
                    "send_message", {"conversation_id": conversation_id, "content": "x " * 300}
                )
                await phone.expect("message_stream")  # an answer is streaming
                carol_id = next(c.user.id for c in server.app.connections if c.user.name == name)
                await _pichat(tmp_path, "users", "revoke", "carol")
                for client in (phone, laptop):
                    try:
                        while True:
                            await client.receive()
                    except ConnectionClosed as closed:
                        assert closed.reason.code == 1008
                assert (await someone_else.call("ping"))["action"] == "pong"
            await server.app.chat.wait_idle()
            db = server.app.db
            page = await db.run(db.repository.list_messages, carol_id, conversation_id, 10, None)
            assert page is not None
            assert [m.status for m in page[0]] == ["complete", "interrupted"]
