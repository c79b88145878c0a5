"""Frames that a step produces together reach each connection in one write.

The server's writes to the client sockets are recorded (the real
``os.write`` still runs) and cut back into WebSocket frames: the frames
of one write are what a client then reads in one go.
"""

from __future__ import annotations

import json
import os
import struct

import trio
from support import collect_stream, open_conversation, run_with_fake_azure

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI
from pichat_trio.transport import hypercorn_fast


def _actions(data: bytes) -> list[str]:
    """The ``action`` of each unmasked server text frame in ``data``."""
    actions, i = [], 0
    while i < len(data):
        size = data[i + 1] & 0x7F
        i += 2
        if size == 126:
            (size,) = struct.unpack_from("!H", data, i)
            i += 2
        elif size == 127:
            (size,) = struct.unpack_from("!Q", data, i)
            i += 8
        actions.append(json.loads(data[i : i + size])["action"])
        i += size
    return actions


class _Writes:
    """Stands in for ``os`` in ``hypercorn_fast``: records each write per descriptor."""

    def __init__(self) -> None:
        self.by_fd: dict[int, list[list[str]]] = {}

    def write(self, fd: int, data: bytes) -> int:
        sent = os.write(fd, data)
        assert sent == len(data)  # small frames on loopback: taken whole
        self.by_fd.setdefault(fd, []).append(_actions(data))
        return sent


async def test_the_frames_around_an_answer_go_out_one_write_per_connection(tmp_path, monkeypatch):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=5, rate=100))
    writes = _Writes()
    monkeypatch.setattr(hypercorn_fast, "os", writes)
    async with (
        run_with_fake_azure(tmp_path, fake, {"FRAME_SECONDS": "0"}) as (server, _),
        server.client() as phone,
        server.client() as pi,
    ):
        with trio.fail_after(10):
            conversation_id = await open_conversation(phone)
            await pi.expect("conversation_created")
            writes.by_fd.clear()
            await phone.request(
                "send_message", {"conversation_id": conversation_id, "content": "Hello?"}
            )
            await phone.expect("message_sent")
            mine = await collect_stream(phone, conversation_id)
            theirs = await collect_stream(pi, conversation_id)
    assert mine["text"] == theirs["text"] == fake.answer(5)
    requester, other = sorted(writes.by_fd.values(), key=lambda w: w[0][0] != "message_sent")
    end = ["new_message", "typing_indicator", "conversation_updated"]
    assert requester[0] == ["message_sent", "typing_indicator"]
    assert other[0] == ["new_message", "typing_indicator"]
    for seen in (requester, other):
        assert all(group == ["message_stream"] for group in seen[1:-1])
        assert seen[-1] == end
        assert len(seen) >= 3
