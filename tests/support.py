"""Running the real server inside a test, and settings for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from pichat_trio.app import App
from pichat_trio.client import Client, open_client
from pichat_trio.server import serve
from pichat_trio.settings import Settings, load_settings

TOKEN = "test-token-0123456789abcdef"


def make_settings(tmp_path: Path, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    base = {
        "ENVIRONMENT": "development",
        "API_TOKEN": TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pichat.db'}",
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "AI_PROVIDER": "echo",
        "ECHO_TOKENS_PER_SECOND": "0",
        "AUDIO_DIR": str(tmp_path / "audio"),
    }
    base.update(env or {})
    return load_settings(base, env_file=None, **overrides)


class RunningServer:
    def __init__(self, url: str, app: App, settings: Settings, stop: trio.Event) -> None:
        self.http_url = url
        self.url = url.replace("http", "ws", 1)
        self.app = app
        self.settings = settings
        self.token = settings.api_token
        self._stop = stop

    def client(self, token: str | None = None, **options: Any) -> Any:
        return open_client(self.url, self.token if token is None else token, **options)

    def stop(self) -> None:
        """Graceful shutdown: drain, close connections with 1001, stop listening."""
        self._stop.set()


@asynccontextmanager
async def run_server(settings: Settings) -> AsyncIterator[RunningServer]:
    stop = trio.Event()
    apps: list[App] = []
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(serve, settings, shutdown_trigger=stop.wait, on_app=apps.append)
        )
        yield RunningServer(url, apps[0], settings, stop)
        nursery.cancel_scope.cancel()


async def handshake_status(
    url: str, headers: list[tuple[str, str]] | None = None, source: str | None = None
) -> int:
    """The HTTP status a WebSocket handshake to ``url`` gets, over a raw socket
    (from the loopback address ``source``, if given)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers or []),
    ]
    with trio.fail_after(5):
        stream = await trio.open_tcp_stream(parts.hostname, parts.port, local_address=source)
        async with stream:
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = b""
            while b"\r\n" not in head:
                chunk = await stream.receive_some(1024)
                if not chunk:
                    break
                head += chunk
    return int(head.split(b" ", 2)[1])


async def add_user(server: RunningServer, name: str) -> str:
    """A new user of the running server; its token."""
    db = server.app.db
    [(_, token)] = await db.run(db.repository.add_users, [name])
    return str(token)


async def open_conversation(client: Client, title: str = "Test") -> str:
    reply = await client.call("create_conversation", {"title": title})
    assert reply["action"] == "conversation_created", reply
    conversation_id: str = reply["payload"]["id"]
    return conversation_id


class RawPeer:
    """A WebSocket client on a bare socket (wsproto framing), for peers that misbehave:
    it answers no pings by itself and reads only when told to."""

    def __init__(self, stream: trio.SocketStream) -> None:
        from wsproto import ConnectionType, WSConnection

        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self._parts: list[str] = []  # of a text message still arriving

    @classmethod
    async def connect(cls, url: str, token: str, receive_buffer: int | None = None) -> RawPeer:
        """Handshake on a new socket; ``receive_buffer`` (bytes) set before it connects."""
        from wsproto.events import AcceptConnection, Request

        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        if receive_buffer is None:
            stream = await trio.open_tcp_stream(parts.hostname, parts.port)
        else:
            sock = trio.socket.socket()
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, receive_buffer)
            await sock.connect((parts.hostname, parts.port))
            stream = trio.SocketStream(sock)
        peer = cls(stream)
        await stream.send_all(peer.ws.send(Request(host=parts.netloc, target=f"/ws?token={token}")))
        while True:
            events = await peer.events()
            if any(isinstance(event, AcceptConnection) for event in events):
                return peer

    async def events(self, max_bytes: int = 65536) -> list[object]:
        data = await self.stream.receive_some(max_bytes)
        self.ws.receive_data(data or None)
        return list(self.ws.events())

    async def frames(self, max_bytes: int = 65536) -> list[dict[str, Any]]:
        """One read (``max_bytes`` at most): the JSON frames it completed, decoded."""
        import msgspec
        from wsproto.events import TextMessage

        frames = []
        for event in await self.events(max_bytes):
            if isinstance(event, TextMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    frames.append(msgspec.json.decode("".join(self._parts)))
                    self._parts.clear()
        return frames

    async def send_text(self, text: str) -> None:
        from wsproto.events import TextMessage

        await self.stream.send_all(self.ws.send(TextMessage(data=text)))

    async def send_action(self, action: str, payload: dict[str, Any]) -> None:
        import msgspec

        await self.send_text(msgspec.json.encode({"action": action, "payload": payload}).decode())


@asynccontextmanager
async def run_with_fake_azure(
    tmp_path: Path, fake: Any = None, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[RunningServer, Any]]:
    """The real server, its AI provider pointed at a fake Azure OpenAI on loopback."""
    from pichat_trio.fakes.azure_openai import FakeAzureOpenAI

    fake = fake or FakeAzureOpenAI()
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        base = {
            "AI_PROVIDER": "azure",
            "AZURE_OPENAI_ENDPOINT": fake.endpoint,
            "AZURE_OPENAI_KEY": fake.api_key,
            "AZURE_OPENAI_DEPLOYMENT_GPT4": "gpt-4",
            "AZURE_OPENAI_DEPLOYMENT_GPT35": "gpt-35-turbo",
            "AI_CONNECT_TIMEOUT": "2",
            "AI_READ_TIMEOUT": "5",
        }
        base.update(env or {})
        async with run_server(make_settings(tmp_path, base)) as running:
            yield running, fake
        nursery.cancel_scope.cancel()


async def ask(client: Client, content: str = "Hi") -> dict[str, Any]:
    """Open a conversation, send ``content`` and collect the whole answer (``collect_stream``);
    the conversation's id is ``result["conversation"]["id"]``."""
    return await send_and_collect(client, await open_conversation(client), content)


async def send_and_collect(client: Client, conversation_id: str, content: str) -> dict[str, Any]:
    """Send ``content`` to ``conversation_id`` and collect the whole answer."""
    await client.request("send_message", {"conversation_id": conversation_id, "content": content})
    return await collect_stream(client, conversation_id)


async def collect_stream(client: Client, conversation_id: str) -> dict[str, Any]:
    """Frames of one answer, up to its conversation_updated: the tokens, the final
    frame, the stored assistant message, and every action in order."""
    actions: list[str] = []
    tokens: list[str] = []
    final: dict[str, Any] = {}
    stored: dict[str, Any] = {}
    while True:
        frame = await client.receive()
        action = frame["action"]
        payload = frame["payload"]
        if payload.get("conversation_id", payload.get("id")) not in (conversation_id, None) and (
            action != "new_message"
        ):
            continue
        actions.append(action)
        if action == "message_stream":
            tokens.append(payload["token"])
            if payload["finished"]:
                final = payload
        elif action == "new_message" and payload["message"]["role"] == "assistant":
            stored = payload["message"]
        elif action == "conversation_updated" and final:
            return {
                "actions": actions,
                "tokens": tokens,
                "text": "".join(tokens),
                "final": final,
                "message": stored,
                "conversation": payload,
            }


class ServerProcess:
    """A ``pichat serve`` child process: its URL once it listens, and its stderr lines."""

    def __init__(self) -> None:
        self.url = ""
        self.lines: list[str] = []
        self.status: int | None = None
        self.listening = trio.Event()
        self.process: trio.Process | None = None

    async def read(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        async for chunk in stream:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode()
                self.lines.append(line)
                if " listening on " in line and not self.url:
                    start = line.index(" listening on ") + len(" listening on ")
                    self.url = line[start:].split()[0]
                    self.listening.set()
        if buffer:
            self.lines.append(buffer.decode())


@asynccontextmanager
async def run_server_process(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    server: ServerProcess | None = None,
    **options: Any,
) -> AsyncIterator[ServerProcess]:
    """Start ``argv`` (a server), wait until it listens; SIGTERM it at the end.

    ``status`` is its exit status once the block is left; ``options`` go to
    ``trio.lowlevel.open_process`` (``preexec_fn`` for another user, say).
    """
    import signal
    import subprocess

    server = ServerProcess() if server is None else server
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **options,
        )
        server.process = process
        try:
            assert process.stderr is not None
            nursery.start_soon(server.read, process.stderr)
            with trio.fail_after(60):
                await server.listening.wait()
            yield server
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                server.status = await process.wait()


async def serve_until_stopped(
    settings: Settings,
    stopped: trio.Event | None = None,
    *,
    task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The real server as a nursery task (``nursery.start`` gives its RunningServer), until
    its ``stop()``; then ``stopped`` is set, the port free: a test can restart on it."""
    try:
        async with run_server(settings) as server:
            task_status.started(server)
            await server._stop.wait()
    finally:
        if stopped is not None:
            stopped.set()
