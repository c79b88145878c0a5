"""Frames sent by their producer (``FrameSink.try_send``), on a virtual clock: what is
sent at once, what waits for the writer, and what merges."""

from __future__ import annotations

import json

import trio
from trio.testing import MockClock

from pichat_trio.protocol.wire import TokenFrame
from pichat_trio.transport.outbox import FLUSH, MERGE_SECONDS, PING, Outbox


def token(text: str, message_id: str = "m1") -> TokenFrame:
    return TokenFrame(TokenFrame.prefix_for("c1", message_id), message_id, text)


class Socket:
    """The ``try_send`` side of a ``FrameSink``: takes ``room`` bytes a call (None: all);
    what it leaves is ``owed`` until ``flush``."""

    app_pings = True

    def __init__(self) -> None:
        self.written: list[str] = []
        self.room: int | None = None
        self.refuse = False
        self.wakes = 0
        self.rest = b""

    @property
    def owed(self) -> bool:
        return bool(self.rest)

    def try_send(self, texts: object) -> bool:
        assert isinstance(texts, str)
        if self.refuse or self.rest:
            return False
        data = texts.encode()
        if self.room is None or self.room >= len(data):
            self.written.append(texts)
            return True
        self.written.append(data[: self.room].decode())
        self.rest = data[self.room :]
        return True

    async def flush(self) -> None:
        self.written.append(self.rest.decode())
        self.rest = b""

    async def send(self, texts: object) -> None:
        raise AssertionError("the writer's work, not in these tests")

    async def ping(self) -> None:
        raise AssertionError("the writer's work, not in these tests")

    async def close(self, code: int, reason: str = "") -> None:
        raise AssertionError("the writer's work, not in these tests")


def outbox_on(socket: Socket) -> Outbox:
    def woken() -> None:
        socket.wakes += 1

    outbox = Outbox("conn", on_frame=woken)
    outbox.sink = socket
    return outbox


def tokens_of(frames: list[str]) -> list[str]:
    return [json.loads(frame)["payload"]["token"] for frame in frames]


async def test_a_frame_is_written_at_once_when_nothing_waits(autojump_clock: MockClock) -> None:
    socket = Socket()
    outbox = outbox_on(socket)
    outbox.put("reply")
    outbox.put(token("a"))
    await trio.sleep(0.02)  # tokens 20 ms apart
    outbox.put(token("b"))
    assert socket.written[0] == "reply"
    assert tokens_of(socket.written[1:]) == ["a", "b"]
    assert len(outbox) == 0 and socket.wakes == 0
    outbox.put(PING)  # the writer's work
    assert len(outbox) == 1 and socket.wakes == 1


async def test_tokens_in_a_burst_merge_for_the_writer(autojump_clock: MockClock) -> None:
    socket = Socket()
    outbox = outbox_on(socket)
    for text in ["a", "b", "c", "d"]:  # read from upstream together
        outbox.put(token(text))
    assert tokens_of(socket.written) == ["a"]
    assert len(outbox) == 1 and socket.wakes == 1
    merged = outbox.pop()
    assert isinstance(merged, str) and tokens_of([merged]) == ["bcd"]
    outbox.put(token("e", "m2"))  # another message: no burst of its own
    await trio.sleep(MERGE_SECONDS)
    outbox.put(token("f"))  # a burst's window has passed
    assert tokens_of(socket.written) == ["a", "e", "f"]


async def test_a_frame_waits_behind_a_queue_or_a_send(autojump_clock: MockClock) -> None:
    socket = Socket()
    outbox = outbox_on(socket)
    socket.refuse = True  # the socket is busy: queued
    outbox.put("first")
    socket.refuse = False
    outbox.put("second")  # behind the first: queued too, in order
    assert socket.written == [] and outbox.pop() == "first" and outbox.pop() == "second"
    outbox.sending_since = trio.current_time()  # the writer is sending
    outbox.put("third")
    assert socket.written == [] and outbox.pop() == "third"


async def test_the_rest_of_a_frame_goes_before_anything_else(autojump_clock: MockClock) -> None:
    socket = Socket()
    socket.room = 5
    outbox = outbox_on(socket)
    outbox.put("0123456789")
    socket.room = None
    outbox.put("next")
    assert socket.written == ["01234"]
    assert outbox.pop() is FLUSH and outbox.pop() == "next"
    assert socket.wakes  # the writer was asked for
    await socket.flush()
    assert socket.written == ["01234", "56789"]


async def test_nothing_is_written_once_closed(autojump_clock: MockClock) -> None:
    socket = Socket()
    outbox = outbox_on(socket)
    outbox.close()
    outbox.put("late")
    assert socket.written == [] and len(outbox) == 0
