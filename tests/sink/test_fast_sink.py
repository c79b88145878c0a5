"""What only the fast path does (``transport/hypercorn_fast.py``), beyond the shared suite.

Frames begun in the producer's step and finished by ``flush`` while the
client pings; browsers' per-message deflate; TLS in hypercorn, where the
frames take ASGI's path but the pings stay the app's; a ``send`` that is not
hypercorn's; and the frame headers the direct writes use.
"""

from __future__ import annotations

import json
import logging
import ssl
from pathlib import Path

import pytest
import trio
import trustme
from sink_support import open_sink_server
from trio_websocket import open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request
from wsproto.extensions import PerMessageDeflate

from pichat_trio.transport import hypercorn_fast
from pichat_trio.transport.asgi_sink import AsgiSink
from pichat_trio.transport.frames import text_frame
from pichat_trio.transport.hypercorn_fast import FastSink

GUARD = 20  # seconds: a hang guard, not a speed bound


async def test_a_frame_begun_in_its_producer_s_step_is_finished_before_any_other() -> None:
    """With a 4 KiB send buffer the socket takes part of each large frame: the send
    lock stays held for the rest, so hypercorn's pongs (the client pings meanwhile)
    wait for ``flush`` and never land inside a frame."""
    count, size = 40, 150_000  # over a 64 KiB segment: the socket takes a part at a time
    rests = 0
    async with (
        open_sink_server("fast") as server,
        open_websocket_url(f"{server.url}/ws", max_message_size=2**20) as ws,
        trio.open_nursery() as nursery,
    ):
        sink = (await server.accepted()).sink
        assert isinstance(sink, FastSink) and sink._socket is not None
        sink._socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, 4096)

        async def producer() -> None:
            nonlocal rests
            for index in range(count):
                text = f"{index}:" + "x" * size
                async with sink._lock:  # type: ignore[union-attr]  # as hypercorn's pongs wait
                    await trio.lowlevel.wait_writable(sink._socket)  # room for a part
                if not sink.try_send(text):
                    await sink.send(text)
                elif sink.owed:
                    rests += 1
                    await sink.flush()

        async def pinger() -> None:
            for index in range(20):
                await ws.ping(b"p%d" % index)

        with trio.fail_after(GUARD):
            nursery.start_soon(producer)
            nursery.start_soon(pinger)
            for index in range(count):
                assert await ws.get_message() == f"{index}:" + "x" * size
    assert rests  # the socket took part of most frames: flush sent the rest


async def test_a_client_with_per_message_deflate_reads_uncompressed_frames() -> None:
    """Browsers offer permessage-deflate and hypercorn accepts it; a direct frame is
    sent uncompressed (RSV1 clear), which the extension allows."""
    async with open_sink_server("fast") as server:
        port = int(server.url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = WSConnection(ConnectionType.CLIENT)
        wire = client.send(
            Request(host="127.0.0.1", target="/ws", extensions=[PerMessageDeflate()])
        )
        await stream.send_all(wire)
        texts: list[str] = []
        accepted: list[AcceptConnection] = []
        buffer = ""
        with trio.fail_after(GUARD):
            while not accepted:
                client.receive_data(await stream.receive_some())
                accepted += [e for e in client.events() if isinstance(e, AcceptConnection)]
            assert [type(e) for e in accepted[0].extensions] == [PerMessageDeflate]
            sink = (await server.accepted()).sink
            for index in range(3):
                assert sink.try_send(f"{index}:" + "é" * 300)
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


async def test_tls_in_hypercorn_sends_frames_through_asgi_and_pings_itself(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with open_sink_server("fast", (str(cert_file), str(key_file))) as server:
        wss = server.url.replace("ws://", "wss://", 1)
        async with open_websocket_url(f"{wss}/ws", ssl_context=client_context) as ws:
            sink = (await server.accepted()).sink
            with trio.fail_after(GUARD):
                assert isinstance(sink, FastSink) and sink.app_pings
                assert sink.try_send("now") is False  # no socket to write directly
                await sink.send(("a", json.dumps({"b": 1})))
                await sink.ping()  # answered by the client; the next frame still comes
                await sink.send("c")
                got = [await ws.get_message() for _ in range(3)]
    assert got == ["a", '{"b": 1}', "c"]


def test_a_send_that_is_not_hypercorn_s_gets_the_public_sink(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def send(message: dict[str, object]) -> None:
        pass

    with caplog.at_level(logging.ERROR):
        sink = hypercorn_fast.sink_for(send, lambda: None)
    assert isinstance(sink, AsgiSink)
    [record] = caplog.records
    assert "cannot ping this WebSocket" in record.getMessage()


def test_the_header_says_the_payload_length_in_bytes() -> None:
    assert text_frame("") == b"\x81\x00"
    assert text_frame("ż" * 63)[:2] == b"\x81\x7e"  # 126 bytes: 63 characters
    assert text_frame("a" * 125)[:2] == b"\x81\x7d"
    assert text_frame("a" * 65535)[:4] == b"\x81\x7e\xff\xff"
    assert text_frame("a" * 65536)[:10] == b"\x81\x7f" + (65536).to_bytes(8, "big")
