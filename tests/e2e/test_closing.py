"""Closes the server starts: protocol errors, oversized frames, and peers that never answer.

Each case is a hand-built frame on a bare socket (``RawPeer``), then the
server's close frame and end of stream read off it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct

import trio
from support import RawPeer, make_settings, run_server
from wsproto.events import CloseConnection

_TEXT, _BINARY, _CLOSE, _PING = 0x1, 0x2, 0x8, 0x9


def frame(opcode: int, payload: bytes, *, masked: bool = True) -> bytes:
    """One final WebSocket frame from a client, built by hand (RFC 6455 5.2)."""
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head = bytes([0x80 | opcode, mask_bit | size])
    elif size < 65536:
        head = bytes([0x80 | opcode, mask_bit | 126]) + struct.pack("!H", size)
    else:
        head = bytes([0x80 | opcode, mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    mask = (key * (size // 4 + 1))[:size]
    return (
        head
        + key
        + (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(size, "big")
    )


BAD_FRAMES = {
    "unmasked": (frame(_TEXT, b'{"action": "ping"}', masked=False), 1002),
    "opcode 3": (frame(0x3, b"x"), 1002),
    "invalid UTF-8": (frame(_TEXT, b'{"action": "\xff\xfe"}'), 1007),
    "ping over 125 bytes": (frame(_PING, b"x" * 126), 1002),
    "close code 999": (frame(_CLOSE, struct.pack("!H", 999)), 1002),
}


async def _close_code_and_eof(peer: RawPeer) -> int | None:
    """Read until the server ends the stream; the code of its close frame, if one came."""
    code = None
    while True:
        data = await peer.stream.receive_some(65536)
        if not data:
            return code
        peer.ws.receive_data(data)
        for event in peer.ws.events():
            if isinstance(event, CloseConnection):
                code = event.code


async def test_protocol_errors_close_with_their_code_and_race_nothing(tmp_path, caplog):
    # The server pings each new connection at once: a bad frame right after the
    # handshake lands while that ping is being sent, in many of the 200 tries.
    caplog.set_level(logging.INFO)
    async with run_server(make_settings(tmp_path)) as server:
        names = list(BAD_FRAMES)
        with trio.fail_after(120):
            for attempt in range(200):
                name = names[attempt % len(names)]
                data, expected = BAD_FRAMES[name]
                peer = await RawPeer.connect(server.url, server.token)
                await peer.stream.send_all(data)
                assert await _close_code_and_eof(peer) == expected, name
                await peer.stream.aclose()
            while server.app.connections:  # noqa: ASYNC110 - polled under fail_after
                await trio.sleep(0.01)
            async with server.client() as client:  # and the server still serves
                assert (await client.call("ping"))["action"] == "pong"
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if "BusyResourceError" in r.getMessage()]
    assert not any(r.exc_info and "BusyResourceError" in repr(r.exc_info[1]) for r in failures)
    assert not failures, [r.getMessage() for r in failures]


async def test_an_oversized_frame_gets_1009_and_a_peer_that_never_closes_is_released(tmp_path):
    # HEARTBEAT_TIMEOUT (hypercorn's read timeout) far beyond the hang guard: only
    # the close timeout can end this connection in time.
    settings = make_settings(tmp_path, {"CLOSE_TIMEOUT": "0.5", "HEARTBEAT_TIMEOUT": "600"})
    async with run_server(settings) as server:
        peer = await RawPeer.connect(server.url, server.token)
        big = frame(_TEXT, b'{"action": "ping", "pad": "' + b"x" * (5 * 1024 * 1024) + b'"}')
        assert len(big) > settings.max_frame_bytes

        async def send_big() -> None:
            with contextlib.suppress(trio.BrokenResourceError):  # dropped before the end
                await peer.stream.send_all(big)

        with trio.fail_after(30):  # a hang guard, far above the close timeout
            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_big)
                # The peer reads, but never answers the close frame nor closes its side.
                assert await _close_code_and_eof(peer) == 1009
                nursery.cancel_scope.cancel()
            while server.app.connections:  # noqa: ASYNC110 - polled under fail_after
                await trio.sleep(0.01)
        await peer.stream.aclose()
