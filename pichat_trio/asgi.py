"""The ASGI application: lifespan, ``/healthz``, ``/readyz``, ``/metrics`` and ``/ws``.

Resources are opened by ``server.serve`` before hypercorn starts, so the
lifespan protocol has nothing to do but say yes. A WebSocket handshake is
checked (draining, origin, token) before it is accepted: a refusal is a
plain HTTP response and no upgrade happens.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from wsproto.events import Ping

from .app import App
from .log_context import bind_connection
from .transport.auth import origin_allowed, token_from
from .transport.forwarded import TrustedProxies
from .transport.handshakes import client_address
from .transport.metrics_endpoint import metrics_response
from .web import respond as respond_web

if TYPE_CHECKING:
    from .transport.direct_frames import DirectFrames

__all__ = ["AsgiApp"]

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_REFUSALS = {401: "token", 403: "origin", 404: "path", 429: "limit", 503: "draining"}
"""The ``reason`` label of ``pichat_handshakes_refused``, by the refusal's status."""


class AsgiApp:
    def __init__(self, app: App, *, app_pings: bool = False, direct_frames: bool = False) -> None:
        self.app = app
        self.app_pings = app_pings
        """The app's heartbeat pings (through hypercorn's stream), not hypercorn's own."""
        self.proxies = TrustedProxies(app.settings.forwarded_allow_ips)
        self._direct_frames_for: Callable[[Send], DirectFrames | None] | None = None
        """Text frames written straight to hypercorn's socket when it can (``fast_paths``)."""
        self._watch_closing: Callable[[Send, Callable[[], None]], bool] | None = None
        """Closes hypercorn leaves unfinished, finished (``closing.py``): on a tested release."""
        if direct_frames:  # a hypercorn release whose internals were tested
            from .transport.closing import watch_closing
            from .transport.direct_frames import DirectFrames

            self._direct_frames_for = DirectFrames.for_send
            self._watch_closing = watch_closing

    def ping_for(self, send: Send) -> Callable[[], Awaitable[None]] | None:
        """A WebSocket ping on this connection, when the app sends the pings.

        ASGI has no ping message: the ping goes through hypercorn's stream,
        whose ``app_send`` is the ``send`` given to us (``fast_paths`` checks
        at start-up that the hook exists, else hypercorn pings by itself).
        """
        if not self.app_pings:
            return None
        stream = getattr(send, "__self__", None)
        emit = getattr(stream, "_send_wsproto_event", None)
        if stream is None or emit is None:  # hypercorn's own pings are off: say so, loudly
            log.error("cannot ping this WebSocket: its send is not hypercorn's stream")
            return None

        async def ping() -> None:
            if not stream.closed:  # hypercorn's own sends check this; this one bypasses them
                await emit(Ping())

        return ping

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
            if self._watch_closing is not None:
                self._watch_closing(send, connection.closing)
            frames = self._direct_frames_for(send) if self._direct_frames_for else None
            await connection.run(receive, send, self.ping_for(send), frames)
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
