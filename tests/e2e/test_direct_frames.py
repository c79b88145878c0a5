"""Text frames written straight to hypercorn's socket (``transport/direct_frames.py``).

A small ASGI app under the real hypercorn sends what a client asks for
through ``DirectFrames``; real clients (trio-websocket, and wsproto with
per-message deflate, as browsers negotiate) must read every frame whole
and in order: every header length form, multi-byte text, a socket that
only takes part of a frame, pings answered while a send is blocked.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trustme
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from pichat_trio.transport import direct_frames
from pichat_trio.transport.direct_frames import DirectFrames, text_frame

Send = Callable[[dict[str, Any]], Awaitable[None]]


class FrameApp:
    """For each request ``[count, size, char]``, ``count`` frames ``"<index>:" + char * size``."""

    def __init__(self, small_send_buffer: bool = False, write_now: bool = False) -> None:
        self.small_send_buffer = small_send_buffer
        self.write_now = write_now  # as a frame's producer does, the rest by send_rest
        self.senders: list[DirectFrames | None] = []
        self.deferred: list[int] = []  # sizes of frames that went hypercorn's way
        self.rests: list[int] = []  # sizes of the rests write_now left to send_rest
        self._sending = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                kind = (await receive())["type"]
                await send({"type": kind + ".complete"})
                if kind == "lifespan.shutdown":
                    return
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        frames = DirectFrames.for_send(send)
        self.senders.append(frames)
        ws = getattr(send, "__self__", None)
        if frames is not None and ws is not None:
            original = ws.send  # what DirectFrames falls back to: count what reaches it

            async def counting(event: Any) -> None:
                if self._sending:  # not hypercorn's own pong or close
                    self.deferred.append(self._sending)
                await original(event)

            ws.send = counting
        if frames is not None and self.small_send_buffer:
            frames._socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 4096)
        while (message := await receive())["type"] == "websocket.receive":
            count, size, char = json.loads(message["text"])
            for index in range(count):
                text = f"{index}:" + char * size
                if frames is None:
                    await send({"type": "websocket.send", "text": text})
                    continue
                self._sending = len(text.encode())
                rest = None
                if self.write_now:
                    async with frames._lock:  # hypercorn's pongs wait on the fd under it
                        await trio.lowlevel.wait_writable(frames._socket)  # room for a part
                    rest = frames.write_now(text)
                if rest is None:
                    await frames.send_text(text)
                elif rest:
                    self.rests.append(len(rest))
                    await frames.send_rest(rest)
                self._sending = 0


@asynccontextmanager
async def hypercorn_with(
    app: FrameApp, ssl_files: tuple[str, str] | None = None
) -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.websocket_ping_interval = None
    if ssl_files is not None:
        config.certfile, config.keyfile = ssl_files
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=trio.sleep_forever)
        )
        yield binds[0].replace("http", "ws", 1)
        nursery.cancel_scope.cancel()


def _payload_length(frame: bytes) -> int:
    """The payload length a server frame's header gives (RFC 6455 5.2)."""
    length = frame[1] & 0x7F
    if length == 126:
        return int.from_bytes(frame[2:4], "big")
    if length == 127:
        return int.from_bytes(frame[2:10], "big")
    return length


async def test_every_length_form_arrives_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    direct: list[int] = []  # payload sizes of the frames written straight to the socket

    def recording_write(fd: int, data: bytes) -> int:
        written = os.write(fd, data)
        direct.append(_payload_length(data))
        return written

    monkeypatch.setattr(direct_frames, "os", SimpleNamespace(write=recording_write))
    app = FrameApp()
    # 2-byte header up to 125 bytes, 4-byte up to 65,535, 10-byte beyond; "ż" is 2 bytes
    cases = [(0, "a"), (119, "a"), (123, "a"), (65529, "a"), (70000, "a")]
    cases += [(40, "ż"), (70, "ż"), (40000, "ż")]
    async with hypercorn_with(app) as url, open_websocket_url(f"{url}/ws") as ws:
        for size, char in cases:
            await ws.send_message(json.dumps([2, size, char]))
            for index in range(2):
                assert await ws.get_message() == f"{index}:" + char * size
    assert app.senders and app.senders[0] is not None
    sizes = [len(f"{index}:{char * size}".encode()) for size, char in cases for index in range(2)]
    # each frame went one way or the other, and only large ones (more than the socket
    # had room for) went hypercorn's way
    assert sorted(direct + app.deferred) == sorted(sizes)
    assert [size for size in sizes if size <= 1000] == [size for size in direct if size <= 1000]
    assert all(size > 1000 for size in app.deferred), app.deferred


def test_the_header_says_the_payload_length_in_bytes() -> None:
    assert text_frame("") == b"\x81\x00"
    assert text_frame("ż" * 63)[:2] == b"\x81\x7e"  # 126 bytes: 63 characters
    assert text_frame("a" * 125)[:2] == b"\x81\x7d"
    assert text_frame("a" * 65535)[:4] == b"\x81\x7e\xff\xff"
    assert text_frame("a" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")


async def _read_whole_while_pinging(ws: Any, count: int, size: int) -> None:
    """Ask for ``count`` frames of ``size`` and read each whole, in order, while 20
    pings (each waiting for its pong) go the other way."""
    await ws.send_message(json.dumps([count, size, "x"]))
    async with trio.open_nursery() as nursery:

        async def ping_meanwhile() -> None:
            for index in range(20):
                await ws.ping(b"p%d" % index)

        nursery.start_soon(ping_meanwhile)
        for index in range(count):
            assert await ws.get_message() == f"{index}:" + "x" * size


async def test_a_socket_that_takes_part_of_a_frame_still_delivers_all_in_order() -> None:
    """With a 4 KiB send buffer most frames wait for room in hypercorn's locked send or
    are written in part, the rest under the held lock; pings the client sends meanwhile
    are answered between frames, never inside one."""
    app = FrameApp(small_send_buffer=True)
    count, size = 200, 20000
    async with (
        hypercorn_with(app) as url,
        open_websocket_url(f"{url}/ws", max_message_size=2**20) as ws,
    ):
        await _read_whole_while_pinging(ws, count, size)
    assert app.deferred  # the full-socket path really ran


async def test_a_frame_begun_by_write_now_is_finished_before_any_other() -> None:
    """``write_now`` leaves the send lock held for the rest of a frame the socket took
    only part of: hypercorn's pongs (the client pings meanwhile) wait for ``send_rest``
    and never land inside a frame."""
    app = FrameApp(small_send_buffer=True, write_now=True)
    count, size = 40, 150_000  # over a 64 KiB segment: the socket takes a part at a time
    async with (
        hypercorn_with(app) as url,
        open_websocket_url(f"{url}/ws", max_message_size=2**20) as ws,
    ):
        await _read_whole_while_pinging(ws, count, size)
        await ws.send_message(json.dumps([3, 10, "y"]))  # small frames: written whole
        assert [await ws.get_message() for _ in range(3)] == [f"{i}:" + "y" * 10 for i in range(3)]
    assert app.rests  # the socket took part of most frames: send_rest sent the rest


async def test_a_client_with_per_message_deflate_reads_uncompressed_frames() -> None:
    """Browsers offer permessage-deflate and hypercorn accepts it; a direct frame is
    sent uncompressed (RSV1 clear), which the extension allows."""
    app = FrameApp()
    async with hypercorn_with(app) as url:
        port = int(url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = WSConnection(ConnectionType.CLIENT)
        deflate = PerMessageDeflate()
        wire = client.send(Request(host="127.0.0.1", target="/ws", extensions=[deflate]))
        await stream.send_all(wire)
        texts: list[str] = []
        accepted: list[AcceptConnection] = []
        buffer = ""
        with trio.fail_after(10):
            while not accepted:
                client.receive_data(await stream.receive_some())
                accepted += [e for e in client.events() if isinstance(e, AcceptConnection)]
            assert [type(e) for e in accepted[0].extensions] == [PerMessageDeflate]
            await stream.send_all(client.send(TextMessage(json.dumps([3, 300, "é"]))))
            while len(texts) < 3:
                client.receive_data(await stream.receive_some())
                for event in client.events():
                    if isinstance(event, Message):
                        buffer += event.data
                        if event.message_finished:
                            texts.append(buffer)
                            buffer = ""
            await stream.send_all(client.send(CloseConnection(code=1000)))
        await stream.aclose()
    assert texts == [f"{index}:" + "é" * 300 for index in range(3)]
    assert app.deferred == []


async def test_tls_in_hypercorn_uses_the_asgi_path(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    app = FrameApp()
    async with hypercorn_with(app, (str(cert_file), str(key_file))) as url:
        wss = url.replace("ws://", "wss://", 1)
        async with open_websocket_url(f"{wss}/ws", ssl_context=client_context) as ws:
            await ws.send_message(json.dumps([2, 10, "a"]))
            assert [await ws.get_message() for _ in range(2)] == ["0:" + "a" * 10, "1:" + "a" * 10]
    assert app.senders == [None]


def test_a_send_that_is_not_hypercorns_gets_no_direct_path() -> None:
    async def send(message: dict[str, Any]) -> None:
        pass

    assert DirectFrames.for_send(send) is None
