"""Two instances behind one Redis: what crossing instances costs a token.

Each user has three connections: the sender and a second device on
instance A, a third device on instance B. Every token's delivery time is
taken on each device against its arrival on the sender's connection (by
character offset, so merged frames count right): A's device is the
same-instance delivery, B's the cross-instance one, in the same run. From
A's ``/metrics``: Redis messages published per generated token. CPU seconds
of each instance (``psutil``), in this run and in the same load on one
instance without Redis (both devices on A): the difference is the
backplane's cost.

Needs ``redis-server`` and a PostgreSQL server where a database may be
made (``PICHAT_TEST_POSTGRES_URL``); everything runs on 127.0.0.1 and is
stopped at the end.

    .venv/bin/python bench/scaleout.py [--users 200] [--words 100] [--rate 20] [--messages 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import psutil
import sqlalchemy as sa
import trio
from trio_util import AsyncValue
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

from pichat_trio.adapters.sql.migrate import upgrade
from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.models import Settings, VoiceSettings

now = time.monotonic
_decode = msgspec.json.Decoder(dict[str, Any]).decode
ADMIN_TOKEN = "bench-token-0123456789abcdef"


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _admin(base: str, statement: str) -> None:
    engine = sa.create_engine(base, poolclass=sa.NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()


@contextmanager
def fresh_database(base: str) -> Iterator[str]:
    """A database of the run's own on the server of ``base``, dropped at the end."""
    name = f"pichat_bench_{uuid.uuid4().hex[:10]}"
    _admin(base, f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    port = _port()
    process = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def make_users(database_url: str, count: int) -> list[str]:
    engine = sa.create_engine(database_url)
    try:
        upgrade(engine)
        repository = SqlRepository(engine, Settings("gpt-4", VoiceSettings(), ""))
        return [token for _, token in repository.add_users([f"u{i}" for i in range(count)])]
    finally:
        engine.dispose()


@dataclass
class Server:
    url: str
    process: psutil.Process

    async def metric(self, name: str) -> float:
        async with httpx.AsyncClient() as http:
            text = (await http.get(self.url + "/metrics")).text
        return sum(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")
        )

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)


@asynccontextmanager
async def server(folder: Path, env: dict[str, str]) -> AsyncIterator[Server]:
    await trio.Path(folder).mkdir(parents=True, exist_ok=True)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "pichat_trio", "serve"],
        env={**os.environ, **env, "AUDIO_DIR": str(folder / "audio")},
        cwd=folder,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    log = b""
    with trio.fail_after(60):
        while b" listening on " not in log:
            chunk = await process.stderr.receive_some(65536)
            if not chunk:
                raise RuntimeError(log.decode())
            log += chunk
    line = log[log.index(b" listening on ") :].split()[2].decode()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain, process.stderr)
        try:
            yield Server(line, psutil.Process(process.pid))
        finally:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(30):
                await process.wait()
            nursery.cancel_scope.cancel()


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    async for _ in stream:
        pass


@dataclass
class Device:
    """One connection: when each character count of each message arrived."""

    ws: WebSocketConnection
    arrivals: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    finished: dict[str, trio.Event] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # answers' message ids, as they began
    begun: AsyncValue[int] = field(default_factory=lambda: AsyncValue(0))
    replies: trio.MemoryReceiveChannel[dict[str, Any]] | None = None

    async def read(self, replies: trio.MemorySendChannel[dict[str, Any]]) -> None:
        while True:
            try:
                frame = _decode(await self.ws.get_message())
            except ConnectionClosed:
                return
            payload = frame["payload"]
            if frame["action"] == "message_stream":
                mid = payload["message_id"]
                if mid not in self.arrivals:
                    self.order.append(mid)
                    self.begun.value = len(self.order)
                seen = self.arrivals.setdefault(mid, [])
                count = (seen[-1][1] if seen else 0) + len(payload["token"])
                seen.append((now(), count))
                if payload["finished"]:
                    self.finished.setdefault(mid, trio.Event()).set()
            elif "request_id" in frame:
                await replies.send(frame)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send_message(
            json.dumps({"action": action, "payload": payload, "request_id": "r"})
        )
        assert self.replies is not None
        return await self.replies.receive()

    async def until_finished(self, message_id: str) -> None:
        await self.finished.setdefault(message_id, trio.Event()).wait()


def delays(sender: list[tuple[float, int]], device: list[tuple[float, int]]) -> list[float]:
    """For each token on the sender's connection: how much later the device had it."""
    out, j = [], 0
    for sent_at, count in sender:
        while j < len(device) and device[j][1] < count:
            j += 1
        if j < len(device):
            out.append(device[j][0] - sent_at)
    return out


async def connect(nursery: trio.Nursery, url: str, token: str) -> Device:
    ws = await connect_websocket_url(nursery, url + f"/ws?token={token}", max_message_size=1 << 24)
    device = Device(ws)
    send, receive = trio.open_memory_channel[dict[str, Any]](16)
    device.replies = receive
    nursery.start_soon(device.read, send)
    await device.call("ping", {})  # subscribed to the user's channel once answered
    return device


async def user_run(
    tokens: str,
    sender_url: str,
    same_url: str,
    cross_url: str,
    args: Any,
    out: dict[str, list[float]],
) -> None:
    async with trio.open_nursery() as nursery:
        sender = await connect(nursery, sender_url, tokens)
        same = await connect(nursery, same_url, tokens)
        cross = await connect(nursery, cross_url, tokens)
        created = await sender.call("create_conversation", {"title": "bench"})
        conversation = created["payload"]["id"]
        content = " ".join(f"w{i}" for i in range(args.words))
        for k in range(args.messages):
            sent = await sender.call(
                "send_message", {"conversation_id": conversation, "content": content}
            )
            assert sent["action"] == "message_sent", sent
            await sender.begun.wait_value(lambda count, k=k: count > k)
            mid = sender.order[k]
            for device in (sender, same, cross):
                await device.until_finished(mid)
            out["same"] += delays(sender.arrivals[mid], same.arrivals[mid])
            out["cross"] += delays(sender.arrivals[mid], cross.arrivals[mid])
        nursery.cancel_scope.cancel()  # the connections close with the servers


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def scenario(
    args: Any, database_url: str, redis_url: str, tokens: list[str], folder: Path
) -> dict[str, Any]:
    base = {
        "ENVIRONMENT": "development",
        "API_TOKEN": ADMIN_TOKEN,
        "DATABASE_URL": database_url,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "AI_PROVIDER": "echo",
        "ECHO_TOKENS_PER_SECOND": str(args.rate),
        "AI_PRECONNECT": "0",
        "LOG_LEVEL": "INFO",
        "REDIS_URL": redis_url,
        "MAX_CONNECTIONS_PER_USER": "10",
        "HEARTBEAT_INTERVAL": "600",  # no pings to answer while the connections are left open
        "HEARTBEAT_TIMEOUT": "1200",
    }
    out: dict[str, list[float]] = {"same": [], "cross": []}
    async with server(folder / "a", base) as a, server(folder / "b", base) as b:
        b_url = (b if redis_url else a).url.replace("http", "ws", 1)
        a_url = a.url.replace("http", "ws", 1)
        cpu0 = (a.cpu(), b.cpu())
        published0 = await a.metric("pichat_backplane_messages_published_total") if redis_url else 0
        tokens0 = await a.metric("pichat_tokens_streamed_total")
        started = now()
        async with trio.open_nursery() as nursery:
            for token in tokens:
                nursery.start_soon(user_run, token, a_url, a_url, b_url, args, out)
        wall = now() - started
        cpu1 = (a.cpu(), b.cpu())
        generated = await a.metric("pichat_tokens_streamed_total") - tokens0
        published = (
            (await a.metric("pichat_backplane_messages_published_total") - published0)
            if redis_url
            else 0
        )
    return {
        "wall_seconds": wall,
        "tokens": generated,
        "redis_messages_per_token": published / generated if generated else 0.0,
        "cpu_a": cpu1[0] - cpu0[0],
        "cpu_b": cpu1[1] - cpu0[1],
        "same_p50_ms": pct(out["same"], 0.5),
        "same_p99_ms": pct(out["same"], 0.99),
        "cross_p50_ms": pct(out["cross"], 0.5),
        "cross_p99_ms": pct(out["cross"], 0.99),
        "samples": len(out["cross"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--words", type=int, default=100, help="tokens per answer, about")
    parser.add_argument("--rate", type=float, default=20, help="tokens per second per answer")
    parser.add_argument("--messages", type=int, default=2, help="answers per user, in turn")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    base = os.environ.get("PICHAT_TEST_POSTGRES_URL", "")
    if not base or shutil.which("redis-server") is None:
        sys.exit("needs PICHAT_TEST_POSTGRES_URL and redis-server")
    folder = Path(tempfile.mkdtemp(prefix="pichat-scaleout-"))
    try:
        with fresh_database(base) as database_url, redis_server(folder) as redis_url:
            tokens = make_users(database_url, args.users)
            results = {
                "backplane": trio.run(scenario, args, database_url, redis_url, tokens, folder),
                "one_instance": trio.run(scenario, args, database_url, "", tokens, folder),
            }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(args, results)
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, **results}, indent=2)
        )


def report(args: Any, results: dict[str, dict[str, Any]]) -> None:
    print(
        f"{args.users} users x 3 connections, {args.messages} answers of "
        f"~{args.words} tokens at {args.rate}/s"
    )
    for name, r in results.items():
        print(
            f"{name:13} tokens {r['tokens']:.0f} in {r['wall_seconds']:.1f} s | "
            f"same-instance p50 {r['same_p50_ms']:.1f} ms p99 {r['same_p99_ms']:.1f} ms | "
            f"other device p50 {r['cross_p50_ms']:.1f} ms p99 {r['cross_p99_ms']:.1f} ms | "
            f"Redis msgs/token {r['redis_messages_per_token']:.3f} | "
            f"CPU s A {r['cpu_a']:.2f} B {r['cpu_b']:.2f}"
        )
    bp, one = results["backplane"], results["one_instance"]
    extra = bp["cpu_a"] + bp["cpu_b"] - one["cpu_a"] - one["cpu_b"]
    per_instance = extra / 2
    print(
        f"backplane CPU per instance: {per_instance:+.2f} s for {bp['tokens']:.0f} tokens "
        f"({1e6 * per_instance / max(1.0, bp['tokens']):.1f} ms per 1000 tokens, "
        f"{100 * per_instance / bp['wall_seconds']:.1f}% of a core)"
    )


if __name__ == "__main__":
    main()
