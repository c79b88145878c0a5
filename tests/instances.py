"""Several real server processes sharing one database and one Redis: scale-out tests."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
from support import TOKEN, ServerProcess, run_server_process

from pichat_trio.client import Client, open_client

FAST = {  # short timings, so that a lease expires and a dead instance is seen quickly
    "GENERATION_LEASE_SECONDS": "1",
    "INSTANCE_HEARTBEAT_SECONDS": "0.2",
    "INSTANCE_TIMEOUT_SECONDS": "1.5",
}


class Instance(ServerProcess):
    """One ``pichat serve`` child: its URLs, its log lines, and its process (to kill)."""

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1)

    def client(self, token: str = TOKEN) -> Any:
        return open_client(self.ws_url, token)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient() as http:
            with trio.fail_after(10):
                return await http.get(self.url + path)

    async def metric(self, name: str) -> float:
        """The value of one unlabelled metric at ``/metrics``."""
        text = (await self.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")


def instance_env(
    folder: Path, database_url: str, redis_url: str, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "API_TOKEN": TOKEN,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "AI_PROVIDER": "echo",
        "ECHO_TOKENS_PER_SECOND": "0",
        "AI_PRECONNECT": "0",
        "AUDIO_DIR": str(folder / "audio"),
        "LOG_LEVEL": "INFO",
        **FAST,
    }
    env.update(extra or {})
    return env


@asynccontextmanager
async def run_instance(
    folder: Path, database_url: str, redis_url: str, extra: dict[str, str] | None = None
) -> AsyncIterator[Instance]:
    """Start one instance, wait until it listens; SIGTERM it at the end (if still alive)."""
    await trio.Path(folder).mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pichat_trio", "serve"]
    env = instance_env(folder, database_url, redis_url, extra)
    async with run_server_process(argv, env, folder, Instance()) as instance:
        assert isinstance(instance, Instance)
        yield instance


@asynccontextmanager
async def two_instances(
    folder: Path, database_url: str, redis_url: str, extra: dict[str, str] | None = None
) -> AsyncIterator[tuple[Instance, Instance]]:
    async with (
        run_instance(folder / "a", database_url, redis_url, extra) as a,
        run_instance(folder / "b", database_url, redis_url, extra) as b,
    ):
        yield a, b


async def ready_client(client: Client) -> Client:
    """Once a ping is answered, the connection is subscribed to its user's channel."""
    reply = await client.call("ping", {})
    assert reply["action"] == "pong", reply
    return client


async def until(predicate: Any, seconds: float = 30, every: float = 0.1) -> None:
    """Poll an instance's state, seen from outside, until ``predicate()`` (awaited) holds."""
    with trio.fail_after(seconds):
        while True:  # the server's own state, seen from outside: polled
            if await predicate():
                return
            await trio.sleep(every)
