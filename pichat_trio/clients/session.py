"""One WebSocket to a PiChat server, for the terminal and Pi clients.

A reader task routes each frame: a reply (it carries the ``request_id`` of a waiting
``call`` or ``stream``) goes to its caller, everything else (answers streaming, other
devices' doings) to ``events``. Failures become ``ClientError`` with one line a person
can act on: the server cannot be reached, refused the token, or went away.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

__all__ = ["ClientError", "Refused", "ServerError", "Session", "open_session"]

EVENTS = 1024
"""Pushed frames kept for the program (a frame is at most a few KiB, bar speech). The
reader never waits for the program, so pings are answered while it is busy (recording,
playing): frames beyond this are dropped and counted in ``Session.dropped``."""

REPLIES = 4096
"""Replies kept for one request: the chunks of a whole spoken answer (the server speaks at
most 5,000 characters) while the program plays them at the speed of speech."""

MAX_FRAME = 32 * 1024 * 1024
"""Speech replies carry whole WAV files in base64."""

_decode = msgspec.json.decode
_encode = msgspec.json.encode


class ClientError(Exception):
    """Something the user must be told in one line; the program cannot go on as it was."""


class Refused(ClientError):
    """The server refused the handshake (a wrong token, origin or URL): retrying will not help."""


class ServerError(ClientError):
    """The server's ``error`` reply to a request (PROTOCOL.md's codes)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.code: str = payload.get("code", "error")
        super().__init__(f"{payload.get('message') or self.code} ({self.code})")


class Session:
    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiters: dict[str, trio.MemorySendChannel[dict[str, Any]]] = {}
        self._send_event, self.events = trio.open_memory_channel[dict[str, Any]](EVENTS)

    lost: str | None = None
    """Why the connection ended, once it has."""

    dropped = 0
    """Pushed frames dropped because the program had not taken the ones before."""

    def drain(self) -> None:
        """Forget the pushed frames not taken yet (what happened while nobody listened)."""
        while True:
            try:
                self.events.receive_nowait()
            except trio.WouldBlock:
                return

    async def run(self, scope: trio.CancelScope) -> None:
        """Read frames until the connection closes; then say why and cancel ``scope``."""
        try:
            while True:
                frame = _decode(await self._ws.get_message())
                if not isinstance(frame, dict):
                    continue
                waiter = self._waiters.get(frame.get("request_id") or "")
                if waiter is not None:
                    await waiter.send(frame)
                else:
                    try:
                        self._send_event.send_nowait(frame)
                    except trio.WouldBlock:
                        self.dropped += 1
        except ConnectionClosed as closed:
            reason = closed.reason
            detail = f" ({reason.code} {reason.reason or ''}".rstrip() + ")" if reason else ""
            self.lost = f"the connection to the server was lost{detail}"
            scope.cancel()

    async def send(self, action: str, payload: Any = None, request_id: str | None = None) -> str:
        request_id = request_id or f"c-{next(self._ids)}"
        frame: dict[str, Any] = {"action": action, "request_id": request_id}
        if payload is not None:
            frame["payload"] = payload
        try:
            await self._ws.send_message(_encode(frame).decode())
        except ConnectionClosed:
            raise ClientError("the connection to the server was lost") from None
        return request_id

    async def send_audio(self, data: bytes) -> None:
        """A binary frame: a voice session's microphone audio."""
        try:
            await self._ws.send_message(data)
        except ConnectionClosed:
            raise ClientError("the connection to the server was lost") from None

    async def call(self, action: str, payload: Any = None, until: str | None = None) -> Any:
        """Send ``action``; return the payload of its reply (the one named ``until``, if given)."""
        async with self._replies(action, payload) as replies:
            while True:
                frame = await _reply(replies)
                if until is None or frame["action"] == until:
                    return frame["payload"]

    async def stream(self, action: str, payload: Any = None) -> AsyncGenerator[Any, None]:
        """Send ``action``; yield the payloads of its replies up to one with ``final: true``.
        (Close it with ``aclosing`` when leaving early.)"""
        async with self._replies(action, payload) as replies:
            while True:
                frame = await _reply(replies)
                yield frame["payload"]
                if frame["payload"].get("final", True):
                    return

    @asynccontextmanager
    async def _replies(
        self, action: str, payload: Any
    ) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        request_id = f"c-{next(self._ids)}"
        send, receive = trio.open_memory_channel[dict[str, Any]](REPLIES)
        self._waiters[request_id] = send
        try:
            await self.send(action, payload, request_id)
            yield receive
        finally:
            del self._waiters[request_id]


async def _reply(replies: trio.MemoryReceiveChannel[dict[str, Any]]) -> dict[str, Any]:
    frame = await replies.receive()
    if frame["action"] == "error":
        raise ServerError(frame.get("payload") or {})
    return frame


@asynccontextmanager
async def open_session(url: str, token: str) -> AsyncIterator[Session]:
    """Connect to ``url`` (``ws://HOST:PORT/ws`` or ``wss://…``) with ``token``."""
    if not url.startswith(("ws://", "wss://")):
        raise ClientError(f"the URL must start with ws:// or wss:// (got {url!r})")
    headers = [(b"Authorization", f"Bearer {token}".encode())]
    context = ssl.create_default_context() if url.startswith("wss://") else None
    connected = False
    try:
        async with open_websocket_url(
            url,
            context,
            extra_headers=headers,
            max_message_size=MAX_FRAME,
            connect_timeout=15,
            disconnect_timeout=2,
        ) as ws:
            connected = True
            session = Session(ws)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(session.run, nursery.cancel_scope)
                    yield session
                    nursery.cancel_scope.cancel()
            except BaseExceptionGroup as group:  # the program's own error, alone: unwrapped
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            if session.lost is not None:
                raise ClientError(session.lost)
    except ConnectionRejected as rejected:
        if connected:
            raise
        raise Refused(_refusal(url, rejected.status_code)) from None
    except (HandshakeError, OSError, trio.TooSlowError) as error:
        if connected:
            raise
        raise ClientError(f"cannot reach the server at {url}: {_reason(error)}") from None


def _refusal(url: str, status: int) -> str:
    if status == 401:
        return f"the server at {url} refused the token (HTTP 401): check --token or PICHAT_TOKEN"
    if status == 403:
        return f"the server at {url} refused this origin (HTTP 403)"
    if status == 404:
        return f"no PiChat WebSocket at {url} (HTTP 404): the URL should end in /ws"
    return f"the server at {url} refused the connection (HTTP {status})"


def _reason(error: BaseException) -> str:
    cause = error.__cause__ or error.__context__
    if isinstance(error, HandshakeError) and cause is not None:
        error = cause
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__
