"""A fake Application Insights ingestion endpoint that the real exporter can talk to.

``POST /v2.1/track`` with a JSON array of telemetry envelopes (gzip or
not), answered as the service answers: ``200`` and ``{"itemsReceived",
"itemsAccepted", "errors": []}``. Point the exporter at it with the
connection string ``connection_string`` (``IngestionEndpoint=http://...``).
Every envelope is kept; ``wait_for`` returns once one matches.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from typing import Any

import h11
import trio

__all__ = ["FakeIngestion"]

_MAX_BODY = 16 * 1024 * 1024
Envelope = dict[str, Any]


class FakeIngestion:
    instrumentation_key = "00000000-0000-0000-0000-000000000001"

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.paths: list[str] = []
        self.port = 0
        self._changed = trio.Event()

    @property
    def connection_string(self) -> str:
        return (
            f"InstrumentationKey={self.instrumentation_key};"
            f"IngestionEndpoint=http://127.0.0.1:{self.port}/"
        )

    def metric_names(self) -> set[str]:
        names: set[str] = set()
        for envelope in self.envelopes:
            base = envelope.get("data", {})
            if base.get("baseType") == "MetricData":
                names.update(m["name"] for m in base["baseData"].get("metrics", []))
        return names

    def requests(self) -> list[dict[str, Any]]:
        return [
            e["data"]["baseData"]
            for e in self.envelopes
            if e.get("data", {}).get("baseType") == "RequestData"
        ]

    async def wait_for(self, found: Callable[[FakeIngestion], bool]) -> None:
        while not found(self):
            await self._changed.wait()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        async with stream:
            while True:
                request, body = await _read_request(stream, connection)
                if request is None:
                    return
                self.paths.append(request.target.decode())
                items = self._take(request, body)
                answer = json.dumps(
                    {"itemsReceived": items, "itemsAccepted": items, "errors": []}
                ).encode()
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(answer))),
                ]
                await stream.send_all(
                    connection.send(h11.Response(status_code=200, headers=headers))
                )
                await stream.send_all(connection.send(h11.Data(data=answer)))
                await stream.send_all(connection.send(h11.EndOfMessage()))
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()

    @staticmethod
    async def _answer(stream: trio.SocketStream, connection: h11.Connection, body: bytes) -> None:
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        response = h11.Response(status_code=200, headers=headers)
        data = connection.send(response) or b""
        data += connection.send(h11.Data(data=body)) or b""
        data += connection.send(h11.EndOfMessage()) or b""
        await stream.send_all(data)

    def _take(self, request: h11.Request, body: bytes) -> int:
        encoding = dict(request.headers).get(b"content-encoding", b"")
        if encoding == b"gzip":
            body = gzip.decompress(body)
        try:
            decoded = json.loads(body) if body else []
        except ValueError:  # newline-delimited envelopes
            decoded = [json.loads(line) for line in body.splitlines() if line.strip()]
        envelopes = decoded if isinstance(decoded, list) else [decoded]
        self.envelopes.extend(envelopes)
        self._changed.set()
        self._changed = trio.Event()
        return len(envelopes)


async def _read_request(
    stream: trio.SocketStream, connection: h11.Connection
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            connection.receive_data(data)
            if not data and request is None:
                return None, b""
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > _MAX_BODY:
                return None, b""
        elif isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            return None, b""
