"""The fake's HTTP/1.1 plumbing over h11: a request read, a plain answer, a hang-up seen."""

from __future__ import annotations

import h11
import msgspec
import trio

from .records import RecordedRequest

__all__ = [
    "MAX_BODY",
    "RECEIVE_BYTES",
    "SEND_ERRORS",
    "Closed",
    "data_bytes",
    "end_bytes",
    "receive_request",
    "send_simple",
    "watch_for_close",
]

MAX_BODY = 4 * 1024 * 1024
"""Bytes of a request body we accept; more is 413 (Azure's limit is higher,
but no test or benchmark needs it)."""

RECEIVE_BYTES = 64 * 1024
SEND_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError)


class Closed(Exception):
    """The connection is over; stop serving it."""


async def receive_request(
    conn: h11.Connection, stream: trio.SocketStream
) -> tuple[h11.Request, bytes]:
    """The next request on ``conn`` and its whole body; ``Closed`` when there is none
    (the client is gone, or sent a body over ``MAX_BODY``: then after a 413)."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(RECEIVE_BYTES))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                await send_simple(conn, stream, 413, {"error": "request body too large"})
                raise Closed
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            return request, bytes(body)
        else:  # ConnectionClosed, or PAUSED after a response that closes
            raise Closed


def data_bytes(conn: h11.Connection, payload: bytes) -> bytes:
    return conn.send(h11.Data(data=payload)) or b""


def end_bytes(conn: h11.Connection) -> bytes:
    return conn.send(h11.EndOfMessage()) or b""


async def watch_for_close(
    conn: h11.Connection,
    stream: trio.SocketStream,
    record: RecordedRequest,
    scope: trio.CancelScope,
) -> None:
    """Notice a client going away between tokens (or during a stall) at once."""
    while True:
        try:
            data = await stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            record._end("client")
            scope.cancel()
            return
        conn.receive_data(data)  # a pipelined request: h11 keeps it for later


async def send_simple(
    conn: h11.Connection,
    stream: trio.SocketStream,
    status: int,
    payload: object,
    extra_headers: dict[str, str] | None = None,
) -> None:
    body = msgspec.json.encode(payload)
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        *(extra_headers or {}).items(),
    ]
    data = conn.send(h11.Response(status_code=status, headers=headers)) or b""
    data += data_bytes(conn, body) + end_bytes(conn)
    await stream.send_all(data)
