"""``pichat serve`` in development prints the link that opens the page signed in."""

from __future__ import annotations

import os
import re
import socket
import sys

import httpx
from support import open_client, run_server_process


async def test_the_development_start_up_prints_a_working_page_link(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("API_TOKEN", "SERVER_", "DATABASE_URL", "AI_", "AZURE_"))
    }
    env.update(ENVIRONMENT="development", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    argv = [sys.executable, "-m", "pichat_trio", "serve", "--port", str(port)]
    async with run_server_process(argv, env, tmp_path) as server:
        text = "\n".join(server.lines)
        link = re.search(rf"Open the page: (http://127\.0\.0\.1:{port}/#token=(\S+))$", text, re.M)
        assert link, text
        async with httpx.AsyncClient() as http:
            page = await http.get(link[1])  # the fragment stays in the browser
        assert page.status_code == 200 and "PiChat" in page.text
        async with open_client(f"ws://127.0.0.1:{port}", link[2]) as client:
            assert (await client.call("ping"))["action"] == "pong"
