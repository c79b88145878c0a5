"""Serving the app with hypercorn's trio worker, and shutting down by deadline.

``serve`` reports readiness with ``task_status.started(url)``, so tests run
the real server on ``127.0.0.1:0`` inside their own nursery. Shutdown:
when ``shutdown_trigger`` returns, the app drains (answers get
``SHUTDOWN_GRACE`` seconds, then are interrupted and connections closed
with 1001) and hypercorn stops listening.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from . import __version__
from .app import App, open_app
from .asgi import AsgiApp
from .settings import Settings
from .startup import log_start
from .transport.heartbeat import Heartbeat
from .transport.hypercorn_fast import fast_path

__all__ = ["hypercorn_config", "serve", "wait_for_signal"]

log = logging.getLogger(__name__)


def hypercorn_config(settings: Settings, *, app_pings: bool = False) -> Config:
    config = Config()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config.bind = [f"{host}:{settings.port}"]
    config.websocket_max_message_size = settings.max_frame_bytes
    config.websocket_ping_interval = None if app_pings else settings.heartbeat_interval
    config.read_timeout = settings.heartbeat_timeout  # type: ignore[assignment]
    config.graceful_timeout = 5.0
    # Room for a burst of handshakes (thousands of devices reconnecting after a
    # restart): with hypercorn's default of 100, SYNs beyond it are dropped and
    # retried by the clients seconds later.
    config.backlog = 2048
    config.accesslog = logging.getLogger("hypercorn.access")
    config.errorlog = logging.getLogger("hypercorn.error")
    config.access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(D)sus'
    if settings.tls_certfile:  # https:// and wss:// without a proxy in front
        config.certfile = settings.tls_certfile
        config.keyfile = settings.tls_keyfile
    return config


async def wait_for_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            return


async def serve(
    settings: Settings,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    on_app: Callable[[App], None] | None = None,
) -> None:
    """Run the server until ``shutdown_trigger`` returns (or forever, until cancelled)."""
    log_start(settings)
    async with open_app(settings) as app:
        if on_app is not None:
            on_app(app)

        async def trigger() -> None:
            if shutdown_trigger is None:
                await trio.sleep_forever()
            else:
                await shutdown_trigger()
            await app.drain(settings.shutdown_grace)

        fast = settings.frame_sink == "fast" and fast_path()
        app_pings = fast  # else hypercorn pings each connection itself

        asgi_app: Any = AsgiApp(app, fast=fast)
        if settings.applicationinsights_connection_string:
            from .azure_monitor import start_azure_monitor

            asgi_app = start_azure_monitor(
                settings.applicationinsights_connection_string, app.metrics, asgi_app
            )

        async def run_hypercorn(task_status: trio.TaskStatus[list[str]]) -> None:
            await hypercorn_serve(
                asgi_app,
                hypercorn_config(settings, app_pings=app_pings),
                shutdown_trigger=trigger,
                task_status=task_status,
            )
            nursery.cancel_scope.cancel()  # and the heartbeat with it

        async with trio.open_nursery() as nursery:
            if app_pings:
                heartbeat = Heartbeat(app.connections, settings.heartbeat_interval)
                nursery.start_soon(heartbeat.run)
            binds = await nursery.start(run_hypercorn)
            url = binds[0]
            log.info(
                "PiChat %s listening on %s (WebSocket at %s/ws)",
                __version__,
                url,
                url.replace("http", "ws", 1),
            )
            task_status.started(url)
