"""/readyz says 503 from the moment draining begins, while answers still stream."""

from __future__ import annotations

import httpx
import trio
import trio.testing
from support import open_conversation, run_with_fake_azure

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI


async def test_readyz_is_503_while_draining_and_healthz_stays_200(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=1000, rate=50))
    env = {"SHUTDOWN_GRACE": "60"}
    async with (
        run_with_fake_azure(tmp_path, fake, env) as (server, _),
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        with trio.fail_after(20):
            assert (await http.get("/readyz")).status_code == 200
            async with server.client() as client:
                conversation_id = await open_conversation(client)
                await client.request(
                    "send_message", {"conversation_id": conversation_id, "content": "x"}
                )
                await client.expect("message_stream")
                server.stop()  # what SIGTERM does: drain, then stop
                await trio.testing.wait_all_tasks_blocked()
                assert server.app.draining
                ready = await http.get("/readyz")
                assert ready.status_code == 503 and ready.json() == {"status": "unready"}
                assert (await http.get("/healthz")).status_code == 200
                assert server.app.chat.active == 1  # the answer is still streaming
                frame = await client.expect("message_stream")
                assert frame["payload"]["finished"] is False
            # The client left: its answer ends, the drain with it, and the server stops.
