"""One load process: trio + trio-websocket clients that stream answers and time every frame.

Started by ``bench/run.py`` with a JSON spec on stdin; writes its results as
JSON to the spec's ``result_file``. Runs only against the URL in the spec and
stops at the spec's deadline, whatever happens.

Per message (on the connection that sent it): time to first token (from
``send_message`` to the first ``message_stream``), gaps between token
frames, text received against the text expected, finish reason. The user's
other connections ("devices") get the same stream; their first-token times
and gaps are kept apart, so fan-out is measured separately from load
across users. A ``slow`` device reads one frame per ``slow_delay`` seconds
through a small receive buffer. ``disconnect`` conversations close their
connection halfway through their last answer (for the upstream-abort time).
``idle`` mode opens connections and holds them.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from pichat_trio.gc_tuning import tune_for_serving

monotonic = time.monotonic


class _Envelope(msgspec.Struct):
    action: str
    payload: msgspec.Raw = msgspec.Raw(b"null")
    request_id: str | None = None


class _Stream(msgspec.Struct):
    conversation_id: str
    message_id: str
    token: str
    finished: bool
    finish_reason: str | None = None


class _WithId(msgspec.Struct):
    id: str = ""
    conversation_id: str = ""
    code: str = ""


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_stream = msgspec.json.Decoder(_Stream).decode
_decode_ids = msgspec.json.Decoder(_WithId).decode
_encode = msgspec.json.encode


def expected_text(tokens: int) -> str:
    return "".join(f" word{i + 1}" for i in range(tokens))


class Stats:
    """Everything this process measured; merged by run.py."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.messages: list[dict[str, Any]] = []
        self.gaps: Counter[int] = Counter()  # requester gaps, in 0.1 ms steps
        self.fan_gaps: Counter[int] = Counter()  # other devices' gaps
        self.fan_ttft: list[float] = []
        self.bins: Counter[int] = Counter()  # tokens received per 0.1 s, requester only
        self.chars = 0
        self.frames = 0  # every frame received, all devices
        self.token_frames = 0
        self.errors: list[str] = []
        self.closes: list[dict[str, Any]] = []
        self.slow: list[dict[str, Any]] = []
        self.lag: list[float] = []
        self.connected = 0
        self.connect_failures = 0


class Message:
    __slots__ = (
        "done",
        "error",
        "finish",
        "first",
        "frames",
        "last",
        "parts",
        "request_id",
        "sent",
        "stored",
        "tag",
        "tokens",
    )

    def __init__(self, tag: str, request_id: str) -> None:
        self.tag = tag
        self.request_id = request_id
        self.sent = 0.0
        self.first: float | None = None
        self.last = 0.0
        self.stored: float | None = None  # conversation_updated after the final frame
        self.frames = 0
        self.parts: list[str] = []
        self.finish: str | None = None
        self.error: str | None = None
        self.done = trio.Event()
        self.tokens = 0


class _StampedStream(trio.abc.Stream):
    """A connection's socket stream that notes when each write begins, and reads
    with one system call.

    trio-websocket's ``send_message`` takes a lock before it writes, and
    taking it is a trip through this process's scheduler: in a burst of 200
    messages the write came a whole round of the load's tasks (10-30 ms)
    after the call. A message's time is that of its write. The lock is held
    from the write's start until ``send_message`` returns, so ``last_write``
    is then this message's.

    A read waits for the socket to be readable, then reads it: trio's own
    ``receive_some`` tries the read first, which between two tokens finds
    nothing, and costs the load's core a failed system call per frame.
    """

    def __init__(self, inner: trio.SocketStream) -> None:
        self._inner = inner
        self.socket = inner.socket
        self._fd = inner.socket.fileno()
        self.last_write = 0.0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.last_write = monotonic()
        await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.wait_readable(self._fd)
        try:
            return os.read(self._fd, max_bytes or 65536)
        except BlockingIOError:
            return await self._inner.receive_some(max_bytes)
        except OSError as exc:
            raise trio.BrokenResourceError(exc) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


class Device:
    """One WebSocket connection of a user, with its reader."""

    def __init__(self, user: User, index: int, ws: Any, slow_delay: float = 0.0) -> None:
        self.user = user
        self.index = index
        self.ws = ws
        self.stream: _StampedStream | None = None  # ws's stream, once it is open
        self.slow_delay = slow_delay
        self.replies: dict[str, trio.MemorySendChannel[_Envelope]] = {}
        self.seen: dict[str, list[str]] = {}  # slow devices: text per message
        self.last_frame: dict[str, float] = {}
        self.closed_by_server: int | None = None
        self.finished = 0  # slow devices: messages whose last frame arrived

    async def read(self, stats: Stats) -> None:  # noqa: PLR0915 - one flat loop, on purpose
        ws = self.ws
        user = self.user
        requester = self.index == 0
        gaps = stats.gaps if requester else stats.fan_gaps
        bins = stats.bins
        start = stats.start
        try:
            while True:
                data = await ws.get_message()
                now = monotonic()
                stats.frames += 1
                env = _decode_envelope(data)
                action = env.action
                if action == "message_stream":
                    frame = _decode_stream(env.payload)
                    conversation = user.conversations.get(frame.conversation_id)
                    if conversation is None or conversation.current is None:
                        continue
                    message = conversation.current
                    if self.slow_delay:
                        self.seen.setdefault(frame.message_id, []).append(frame.token)
                        if frame.finished:
                            self.finished += 1
                        await trio.sleep(self.slow_delay)
                        continue
                    if not frame.finished:
                        stats.token_frames += 1
                    last = self.last_frame.get(frame.conversation_id)
                    if last is None:
                        if requester:
                            message.first = now
                        else:
                            stats.fan_ttft.append(now - message.sent)
                    elif not frame.finished:
                        gaps[int((now - last) * 10000)] += 1
                    self.last_frame[frame.conversation_id] = now
                    if requester:
                        token = frame.token
                        message.parts.append(token)
                        message.frames += 1
                        if token:
                            count = token.count(" ")
                            message.tokens += count
                            bins[int((now - start) * 10)] += count
                            stats.chars += len(token)
                        if frame.finished:
                            message.finish = frame.finish_reason
                            message.last = now
                    if frame.finished:
                        self.last_frame.pop(frame.conversation_id, None)
                elif action == "conversation_updated" and requester:
                    ids = _decode_ids(env.payload)
                    conversation = user.conversations.get(ids.id)
                    current = conversation.current if conversation is not None else None
                    if current is not None and current.finish is not None:
                        current.stored = now
                        current.done.set()
                elif env.request_id is not None and requester:
                    if action == "error":
                        refused = user.by_request.get(env.request_id)
                        if refused is not None:
                            refused.error = _decode_ids(env.payload).code or "error"
                            if refused.first is None:
                                refused.done.set()
                    channel = self.replies.pop(env.request_id, None)
                    if channel is not None:
                        channel.send_nowait(env)
        except ConnectionClosed as closed:
            self.closed_by_server = closed.reason.code if closed.reason else None

    async def call(self, action: str, payload: Any, request_id: str) -> _Envelope:
        send, receive = trio.open_memory_channel[_Envelope](1)
        self.replies[request_id] = send
        await self.ws.send_message(
            _encode({"action": action, "payload": payload, "request_id": request_id}).decode()
        )
        return await receive.receive()


class Conversation:
    __slots__ = ("current", "id")

    def __init__(self, conversation_id: str) -> None:
        self.id = conversation_id
        self.current: Message | None = None


class User:
    def __init__(self, name: str, token: str) -> None:
        self.name = name
        self.token = token
        self.conversations: dict[str, Conversation] = {}
        self.by_request: dict[str, Message] = {}


def _target(url: str, token: str) -> str:
    return f"{url.rstrip('/')}/ws?token={quote(token)}"


async def _hold_device(
    url: str, device: Device, stats: Stats, limiter: trio.Semaphore, ready: trio.Event
) -> None:
    """Open the device's connection, say so, then read until it closes."""
    await limiter.acquire()
    try:
        async with open_websocket_url(
            _target(url, device.user.token),
            max_message_size=64 * 1024 * 1024,
            message_queue_size=1,
        ) as ws:
            limiter.release()
            device.ws = ws
            assert isinstance(ws._stream, trio.SocketStream)  # ws://, not wss://
            device.stream = ws._stream = _StampedStream(ws._stream)
            if device.slow_delay:  # a small receive buffer, so the server feels the slowness
                device.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            ready.set()
            await device.read(stats)
    except BaseException:
        if not ready.is_set():
            limiter.release()
            ready.set()
        raise


async def _open_conversation(
    spec: dict[str, Any], device: Device, stats: Stats, c: int, opened: dict[Any, Conversation]
) -> None:
    """Part of the set-up, before the common start: the messages are what is measured."""
    user = device.user
    tag = f"{spec['worker']}.{user.name}.c{c}.new"
    reply = await device.call("create_conversation", {"title": f"bench {c}"}, tag)
    if reply.action != "conversation_created":
        stats.errors.append(f"create_conversation: {reply.action}")
        return
    conversation = Conversation(_decode_ids(reply.payload).id)
    user.conversations[conversation.id] = conversation
    opened[user.name, c] = conversation


async def _conversation(
    spec: dict[str, Any],
    device: Device,
    stats: Stats,
    c: int,
    disconnect: bool,
    conversation: Conversation,
) -> None:
    user = device.user
    tag_base = f"{spec['worker']}.{user.name}.c{c}"
    if spec.get("stagger"):  # spread the first messages evenly instead of all at once
        await trio.sleep(spec["stagger"] * spec["_slot"][user.name, c])
    tokens, rate, count = spec["tokens"], spec["rate"], spec["messages"]
    markers = f"[fake:tokens:{tokens}][fake:rate:{rate:g}]"
    expected = expected_text(tokens)
    timeout = (tokens / rate if rate else 0) * 4 + 30
    for k in range(count):
        tag = f"{tag_base}.m{k}"
        request_id = f"{tag}.send"
        message = Message(tag, request_id)
        conversation.current = message
        user.by_request[request_id] = message
        content = f"bench:{tag} {markers}"
        frame = {
            "action": "send_message",
            "payload": {"conversation_id": conversation.id, "content": content},
            "request_id": request_id,
        }
        await device.ws.send_message(_encode(frame).decode())
        assert device.stream is not None
        message.sent = device.stream.last_write
        closing = disconnect and k == count - 1
        with trio.move_on_after(timeout) as scope:
            if closing:
                while message.tokens < tokens // 2:  # noqa: ASYNC110 - polls a counter
                    await trio.sleep(0.005)
                closed_at = monotonic()
                await device.ws.aclose()
                stats.closes.append({"tag": tag, "closed": closed_at})
                return
            await message.done.wait()
        text = "".join(message.parts)
        ok = (
            not scope.cancelled_caught
            and message.error is None
            and message.finish == "stop"
            and text == expected
        )
        if not ok:
            why = (
                "timeout"
                if scope.cancelled_caught
                else message.error or f"finish={message.finish}"
                if message.error or message.finish != "stop"
                else "text differs"
            )
            stats.errors.append(f"{tag}: {why}")
        stats.messages.append(
            {
                "tag": tag,
                "sent": message.sent,
                "ttft": None if message.first is None else message.first - message.sent,
                "duration": (message.last or monotonic()) - message.sent,
                "stored": None if message.stored is None else message.stored - message.sent,
                "tokens": message.tokens,
                "chars": len(text),
                "frames": message.frames,
                "ok": ok,
            }
        )
        del user.by_request[request_id]


async def _lag_probe(stats: Stats) -> None:
    """How late this process's event loop wakes up: high means the client is the bottleneck."""
    while True:
        before = monotonic()
        await trio.sleep(0.01)
        stats.lag.append(monotonic() - before - 0.01)


async def _stream_mode(spec: dict[str, Any], stats: Stats) -> None:
    url = spec["url"]
    users = [User(u["name"], u["token"]) for u in spec["users"]]
    slow_users = set(spec.get("slow_users", []))
    disconnect_users = set(spec.get("disconnect_users", []))
    devices: list[list[Device]] = []
    for user in users:
        mine = [Device(user, d, None) for d in range(spec["devices"])]
        if user.name in slow_users:
            mine.append(Device(user, len(mine), None, spec["slow_delay"]))
        devices.append(mine)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_lag_probe, stats)
        limiter = trio.Semaphore(64)
        events = []
        for mine in devices:
            for device in mine:
                ready = trio.Event()
                events.append(ready)
                nursery.start_soon(_hold_device, url, device, stats, limiter, ready)
        for ready in events:
            await ready.wait()
        stats.connected = sum(device.ws is not None for mine in devices for device in mine)
        opened: dict[Any, Conversation] = {}
        async with trio.open_nursery() as setup:
            for mine in devices:
                for c in range(spec["conversations"]):
                    if mine[0].ws is not None:
                        setup.start_soon(_open_conversation, spec, mine[0], stats, c, opened)
        await trio.sleep_until(spec["start_at"] - monotonic() + trio.current_time())
        total = len(users) * spec["conversations"]
        spec["_slot"] = {
            (user.name, c): (i * spec["conversations"] + c) / total
            for i, user in enumerate(users)
            for c in range(spec["conversations"])
        }
        async with trio.open_nursery() as running:
            for user, mine in zip(users, devices, strict=True):
                for c in range(spec["conversations"]):
                    conversation = opened.get((user.name, c))
                    if conversation is None:
                        continue  # not connected, or refused: already counted as an error
                    running.start_soon(
                        _conversation,
                        spec,
                        mine[0],
                        stats,
                        c,
                        user.name in disconnect_users,
                        conversation,
                    )
        slow = [device for mine in devices for device in mine if device.slow_delay]
        want = spec["conversations"] * spec["messages"]
        with trio.move_on_after(spec.get("slow_drain", 30)):  # let slow devices catch up
            while any(  # noqa: ASYNC110 - polls counters
                d.finished < want and d.closed_by_server is None for d in slow
            ):
                await trio.sleep(0.05)
        expected = expected_text(spec["tokens"])
        for mine in devices:
            for device in mine:
                if device.slow_delay:
                    complete = sum("".join(parts) == expected for parts in device.seen.values())
                    stats.slow.append(
                        {
                            "messages_seen": len(device.seen),
                            "complete": complete,
                            "frames": sum(map(len, device.seen.values())),
                            "closed_by_server": device.closed_by_server,
                        }
                    )
        _report(stats)


async def _idle_mode(spec: dict[str, Any], stats: Stats) -> None:
    url = spec["url"]
    tokens = [u["token"] for u in spec["users"]]
    sockets: list[Any] = []
    limiter = trio.Semaphore(100)

    async def hold(i: int, ready: trio.Event) -> None:
        await limiter.acquire()
        try:
            async with open_websocket_url(_target(url, tokens[i % len(tokens)])) as ws:
                limiter.release()
                sockets.append(ws)
                ready.set()
                await trio.sleep_forever()  # the process exits from _report: no close handshakes
        except Exception as exc:
            stats.connect_failures += 1
            if len(stats.errors) < 20:
                stats.errors.append(f"connect: {exc!r}")
        finally:
            if not ready.is_set():
                limiter.release()
                ready.set()

    async with trio.open_nursery() as nursery:
        events = []
        for i in range(spec["idle"]):
            ready = trio.Event()
            events.append(ready)
            nursery.start_soon(hold, i, ready)
        for ready in events:
            await ready.wait()
        stats.connected = len(sockets)
        Path(spec["ready_file"]).write_text(str(len(sockets)))  # noqa: ASYNC240 - tiny
        await trio.sleep(spec["hold"])
        alive = [ws for ws in sockets if ws.closed is None]
        # One round trip on a sample shows the held connections still serve.
        sample = alive[:: max(1, len(alive) // 50)]
        with trio.move_on_after(10):
            for ws in sample:
                await ws.send_message('{"action":"ping","request_id":"p"}')
                while _decode_envelope(await ws.get_message()).action != "pong":
                    pass
        stats.messages.append({"alive": len(alive), "pinged": len(sample)})
        _report(stats)


_RESULTS = {"file": ""}
_WALL_START = monotonic()


async def _main(spec: dict[str, Any]) -> None:
    stats = Stats(spec.get("start_at", monotonic()))
    with trio.move_on_at(spec["deadline"] - monotonic() + trio.current_time()):
        if spec["mode"] == "idle":
            await _idle_mode(spec, stats)
        else:
            await _stream_mode(spec, stats)
    stats.errors.append("load process hit its deadline")
    _report(stats)


def _report(stats: Stats) -> None:
    """Write the results to stdout and exit at once, skipping the teardown of every socket."""
    lag = sorted(stats.lag)
    result = {
        "messages": stats.messages,
        "gaps": dict(stats.gaps),
        "fan_gaps": dict(stats.fan_gaps),
        "fan_ttft": stats.fan_ttft,
        "bins": dict(stats.bins),
        "chars": stats.chars,
        "frames": stats.frames,
        "token_frames": stats.token_frames,
        "errors": stats.errors,
        "closes": stats.closes,
        "slow": stats.slow,
        "connected": stats.connected,
        "connect_failures": stats.connect_failures,
        "cpu": time.process_time(),  # the whole process, as psutil sees it from outside
        "wall": monotonic() - _WALL_START,
        "lag_p99": lag[int(len(lag) * 0.99)] if lag else 0.0,
        "lag_max": lag[-1] if lag else 0.0,
    }
    Path(_RESULTS["file"]).write_text(json.dumps(result))
    os._exit(0)


def main() -> int:
    spec = json.load(sys.stdin)
    _RESULTS["file"] = spec["result_file"]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tune_for_serving()  # the load allocates per frame as the server does per token
    trio.run(_main, spec)  # _main ends the process with its results written
    return 0


if __name__ == "__main__":
    sys.exit(main())
