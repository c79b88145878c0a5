"""The ASGI application: lifespan, ``/healthz``, ``/readyz``, ``/metrics`` and ``/ws``.

Resources are opened by ``server.serve`` before hypercorn starts, so the
lifespan protocol has nothing to do but say yes. A WebSocket handshake is
checked (draining, origin, token) before it is accepted: a refusal is a
plain HTTP response and no upgrade happens.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .app import App
from .log_context import bind_connection
from .transport import hypercorn_fast
from .transport.asgi_sink import AsgiSink
from .transport.auth import origin_allowed, token_from
from .transport.forwarded import TrustedProxies
from .transport.handshakes import client_address
from .transport.metrics_endpoint import metrics_response
from .transport.sink import FrameSink
from .web import respond as respond_web

__all__ = ["AsgiApp"]

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_REFUSALS = {401: "token", 403: "origin", 404: "path", 429: "limit", 503: "draining"}
"""The ``reason`` label of ``pichat_handshakes_refused``, by the refusal's status."""


class AsgiApp:
    def __init__(self, app: App, *, fast: bool = False) -> None:
        self.app = app
        self.fast = fast
        """Each WebSocket's frames through ``hypercorn_fast`` (checked at start-up, and
        the app sends the pings), else through the public ``AsgiSink``."""
        self.proxies = TrustedProxies(app.settings.forwarded_allow_ips)

    def sink_for(self, send: Send, on_close: Callable[[], None]) -> FrameSink:
        """The sink of a WebSocket just accepted through ``send``."""
        if self.fast:
            return hypercorn_fast.sink_for(send, on_close)
        return AsgiSink(send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "lifespan" and self.proxies:
            self.proxies.apply(scope)
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, send: Send) -> None:
        if await respond_web(scope, send):  # the page at / and its files
            return
        path = scope["path"]
        if path == "/healthz":
            status, body = 200, b'{"status":"ok"}'
        elif path == "/readyz":
            ready = await self.app.ready()
            status, body = (200, b'{"status":"ready"}') if ready else (503, b'{"status":"unready"}')
        elif path == "/metrics":
            status, headers, body = metrics_response(
                self.app.metrics, self.app.settings.metrics_token, scope["headers"]
            )
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        else:
            status, body = 404, b'{"error":"not found"}'
        await send({"type": "http.response.start", "status": status, "headers": _JSON})
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = scope["headers"]
        if scope["path"] != "/ws":
            await self._refuse(send, 404, "not found")
            return
        if self.app.draining:
            await self._refuse(send, 503, "the server is shutting down")
            return
        if not origin_allowed(self.app.settings.allowed_origins, headers):
            await self._refuse(send, 403, "origin not allowed")
            return
        address, now = client_address(scope), trio.current_time()
        if self.app.failed_handshakes.refused(address, now):
            await self._refuse(send, 429, "too many failed handshakes; try again later")
            return
        user = await self.app.auth.user_for(token_from(scope["query_string"], headers))
        if user is None:
            self.app.failed_handshakes.failed(address, now)
            await self._refuse(send, 401, "missing or wrong token")
            return
        connection = self.app.connection(user)
        if connection is None:
            await self._refuse(send, 429, "too many connections for this user")
            return
        bind_connection(connection.id, user.id)
        self.app.opened(connection)
        try:
            await send({"type": "websocket.accept"})
            await connection.run(receive, self.sink_for(send, connection.closing))
        finally:
            self.app.closed(connection)
            if connection.outbox.stuck:
                self.app.metrics.outbox_stalled(connection.outbox.dropped)

    async def _refuse(self, send: Send, status: int, reason: str) -> None:
        self.app.metrics.handshakes_refused.labels(_REFUSALS.get(status, str(status))).inc()
        await _refuse(send, status, reason)


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = b'{"error":"' + reason.encode() + b'"}'
    await send({"type": "websocket.http.response.start", "status": status, "headers": _JSON})
    await send({"type": "websocket.http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
