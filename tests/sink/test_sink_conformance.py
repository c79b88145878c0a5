"""What every ``FrameSink`` does, checked on both: the public ASGI sink and the fast path.

Each test runs a real hypercorn on loopback (``conftest.sink_server``) and
real clients (trio-websocket; bare wsproto where the client must see the
server's pings or build frames by hand). ``fail_after`` guards against
hangs only; nothing here is timed.
"""

from __future__ import annotations

import os
import struct
from types import SimpleNamespace

import pytest
import trio
import trio.testing
from sink_support import MAX_MESSAGE, SINKS, SinkServer, open_sink_server
from trio_websocket import ConnectionClosed
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from pichat_trio.protocol.wire import Texts
from pichat_trio.transport import hypercorn_fast
from pichat_trio.transport.hypercorn_fast import FastSink
from pichat_trio.transport.sink import FrameSink

GUARD = 20  # seconds: a hang guard, not a speed bound


async def send_one(sink: FrameSink, texts: Texts) -> bool:
    """As a connection sends: offered now first, else sent with backpressure, the rest
    of a frame begun flushed. True when it went in this step."""
    taken = sink.try_send(texts)
    if not taken:
        await sink.send(texts)
    elif sink.owed:
        await sink.flush()
    return bool(taken)


async def test_frames_arrive_whole_and_in_order(sink_server: SinkServer) -> None:
    # every header length form (2, 4 and 10 bytes), multi-byte text, an empty frame
    texts = [
        f"{i}:" + char * size
        for i, (size, char) in enumerate(
            [(0, "a"), (119, "a"), (123, "a"), (40, "ż"), (70, "ż"), (65529, "a"), (70000, "a")]
        )
    ]
    async with trio.open_nursery() as nursery:
        ws, _ = await sink_server.client(nursery)
        accepted = await sink_server.accepted()
        sink = accepted.sink
        assert isinstance(sink, FastSink) == (sink_server.kind == "fast")
        with trio.fail_after(GUARD):
            taken = [await send_one(sink, text) for text in texts]
            await sink.send(("a", "b"))
            assert [await ws.get_message() for _ in texts] == texts
            assert [await ws.get_message() for _ in range(2)] == ["a", "b"]
        # the fast sink writes a frame in its producer's step; the public one never can
        assert any(taken) == (sink_server.kind == "fast")
        await ws.aclose()


async def test_a_tuple_goes_out_as_consecutive_messages_in_one_write(
    sink_server: SinkServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real_write = os.write

    def recording_write(fd: int, data: bytes) -> int:
        writes.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(hypercorn_fast, "os", SimpleNamespace(write=recording_write))
    async with trio.open_nursery() as nursery:
        ws, _ = await sink_server.client(nursery)
        sink = (await sink_server.accepted()).sink
        with trio.fail_after(GUARD):
            await send_one(sink, "before")
            writes.clear()
            await send_one(sink, ("one", "two", "three"))
            await send_one(sink, "after")
            got = [await ws.get_message() for _ in range(5)]
        assert got == ["before", "one", "two", "three", "after"]
        if sink_server.kind == "fast":  # the tuple's three frames in one system call
            assert writes[0] == b"\x81\x03one\x81\x03two\x81\x05three"
        else:
            assert writes == []  # ASGI only: hypercorn's own send wrote them
        await ws.aclose()


async def test_a_client_that_stops_reading_holds_the_sender_back(sink_server: SinkServer) -> None:
    big = "x" * (256 * 1024)
    count = 48  # 12 MiB: more than a small receive window and the largest send buffer
    sent = 0

    async with trio.open_nursery() as nursery:
        ws, _ = await sink_server.client(nursery, receive_buffer=64 * 1024)
        sink = (await sink_server.accepted()).sink

        async def sender() -> None:
            nonlocal sent
            for index in range(count):
                await send_one(sink, f"{index:02}" + big)
                sent += 1

        nursery.start_soon(sender)
        with trio.fail_after(GUARD):
            await trio.testing.wait_all_tasks_blocked()
        # everything is blocked, the client reading nothing: the sender waits for room
        assert 0 < sent < count
        assert sink.try_send("now?") is False  # nothing jumps the queue of a full socket
        with trio.fail_after(GUARD):
            for index in range(count):
                message = await ws.get_message()
                assert message[:2] == f"{index:02}" and len(message) == len(big) + 2
        assert sent == count
        await ws.aclose()


async def _raw_client(sink_server: SinkServer) -> tuple[trio.SocketStream, WSConnection]:
    port = int(sink_server.url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    client = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(client.send(Request(host="127.0.0.1", target="/ws")))
    while True:
        client.receive_data(await stream.receive_some(65536))
        if any(isinstance(event, AcceptConnection) for event in client.events()):
            return stream, client


@pytest.mark.parametrize("kind", SINKS)
async def test_a_keepalive_ping_reaches_the_peer_and_its_pong_the_server(kind: str) -> None:
    """Where the sink leaves pings to the app, ``ping`` sends one; elsewhere the
    server sends them by itself. Either way the peer sees pings, and its pongs keep
    the connection open for the frames that follow."""
    async with open_sink_server(kind, server_pings=True) as sink_server:
        await _ping_and_pong(sink_server)


async def _ping_and_pong(sink_server: SinkServer) -> None:
    with trio.fail_after(GUARD):
        stream, client = await _raw_client(sink_server)
        sink = (await sink_server.accepted()).sink
        texts: list[str] = []
        for _ in range(2):
            if sink.app_pings:
                await sink.ping()
            pinged = False
            while not pinged:
                client.receive_data(await stream.receive_some(65536))
                for event in client.events():
                    if isinstance(event, Ping):
                        pinged = True
                        await stream.send_all(client.send(event.response()))
        await send_one(sink, "still open")
        while not texts:
            client.receive_data(await stream.receive_some(65536))
            texts += [e.data for e in client.events() if isinstance(e, TextMessage)]
        assert texts == ["still open"]
        await stream.aclose()


async def test_pings_from_the_client_are_answered_between_frames(
    sink_server: SinkServer,
) -> None:
    """The client pings (and waits for each pong) while 4 MB of large frames stream to
    it: every pong comes between two frames, never inside one."""
    count, size = 200, 20000
    async with trio.open_nursery() as nursery:
        ws, _ = await sink_server.client(nursery)
        sink = (await sink_server.accepted()).sink

        async def sender() -> None:
            for index in range(count):
                await send_one(sink, f"{index}:" + "x" * size)

        pinged = trio.Event()

        async def pinger() -> None:
            for index in range(20):
                await ws.ping(b"p%d" % index)  # returns on its pong
            pinged.set()

        with trio.fail_after(GUARD):
            nursery.start_soon(sender)
            nursery.start_soon(pinger)
            for index in range(count):
                assert await ws.get_message() == f"{index}:" + "x" * size
            await pinged.wait()
        await ws.aclose()


async def test_close_sends_its_code_after_the_frames_before_it(sink_server: SinkServer) -> None:
    async with trio.open_nursery() as nursery:
        ws, _ = await sink_server.client(nursery)
        accepted = await sink_server.accepted()
        sink = accepted.sink
        with trio.fail_after(GUARD):
            await send_one(sink, "last words")
            await sink.close(4000, "see you")
            await sink.send("after the close")  # dropped, not an error
            assert sink.try_send("nor this") is False
            assert await ws.get_message() == "last words"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            await accepted.disconnected.wait()
    assert (closed.value.reason.code, closed.value.reason.reason) == (4000, "see you")
    # the fast path also tells the app a close it started is out (``Connection.closing``)
    assert accepted.closes_started == (1 if sink_server.kind == "fast" else 0)


def _masked_frame(opcode: int, payload: bytes) -> bytes:
    size = len(payload)
    head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", size)
    return head + b"\0\0\0\0" + payload  # a zero mask: the payload as is


async def test_a_frame_over_the_limit_gets_1009(sink_server: SinkServer) -> None:
    with trio.fail_after(GUARD):
        stream, client = await _raw_client(sink_server)
        accepted = await sink_server.accepted()
        await stream.send_all(_masked_frame(0x1, b"x" * (MAX_MESSAGE + 1)))
        codes: list[int] = []
        while not codes:
            data = await stream.receive_some(65536)
            assert data, "the server closed without a close frame"
            client.receive_data(data)
            codes += [e.code for e in client.events() if isinstance(e, CloseConnection)]
        assert codes == [1009]
        await send_one(accepted.sink, "too late")  # the sink stays quiet after it
        await stream.aclose()
        await accepted.disconnected.wait()
    assert accepted.closes_started == (1 if sink_server.kind == "fast" else 0)


async def test_a_peer_that_vanishes_leaves_every_call_quiet(sink_server: SinkServer) -> None:
    """The peer drops the TCP connection, mid-send and without a close frame: a send
    blocked on its full socket returns, and every call after that returns quietly."""
    async with trio.open_nursery() as nursery:
        _ws, stream = await sink_server.client(nursery, receive_buffer=64 * 1024)
        accepted = await sink_server.accepted()
        sink = accepted.sink
        finished = trio.Event()

        async def sender() -> None:
            for index in range(48):
                await send_one(sink, f"{index}:" + "y" * (256 * 1024))
            finished.set()

        nursery.start_soon(sender)
        with trio.fail_after(GUARD):
            await trio.testing.wait_all_tasks_blocked()
            assert not finished.is_set()  # blocked on the client's full socket
            stream.socket.setsockopt(
                trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            await stream.aclose()  # a reset, as from a device that lost power
            await accepted.disconnected.wait()
            await finished.wait()
            assert sink.try_send("gone") is False
            await sink.send("gone")
            await sink.send(("still", "gone"))
            await sink.ping()
            await sink.close(1001)
        nursery.cancel_scope.cancel()  # the client's own reader, which saw the reset
