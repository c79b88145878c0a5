"""Azure Monitor (Application Insights), when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set.

Through the ``azure-monitor-opentelemetry`` distro (the ``azure-monitor``
extra). What goes there:

- the figures of ``/metrics``, the same ones: each family of the app's
  Prometheus registry becomes an observable OpenTelemetry instrument read
  at the exporter's interval (a histogram as its ``_count``, ``_sum`` and
  ``_bucket`` series), so nothing is counted twice and nothing more is done
  per token;
- request traces: a server span per HTTP request (OpenTelemetry's ASGI
  middleware) and one per WebSocket connection, from handshake to close.
  The middleware wraps ``send``, which would take WebSockets off their
  fast path (``transport/hypercorn_fast.py``), so WebSockets get a span of
  our own instead.

Logs are not sent: they go to stdout as JSON lines, which App Service keeps
(its log stream, Log Analytics), already redacted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .metrics import Metrics

__all__ = ["start_azure_monitor"]

log = logging.getLogger(__name__)

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def start_azure_monitor(connection_string: str, metrics: Metrics, app: Asgi) -> Asgi:
    """Configure the exporter, bridge the figures; returns ``app`` wrapped for traces.

    Without the extra installed it says so once and returns ``app`` as it is.
    """
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry import metrics as otel_metrics
        from opentelemetry import trace
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:
        log.warning(
            "APPLICATIONINSIGHTS_CONNECTION_STRING is set but azure-monitor-opentelemetry is not "
            "installed (pip install 'pichat-trio[azure-monitor]'): nothing goes to Azure Monitor"
        )
        return app
    # The distro takes "no logs" from the environment only (its disable_logging argument is
    # overwritten by the environment's default): logs stay on stdout, redacted.
    os.environ["OTEL_LOGS_EXPORTER"] = "none"
    for chatty in ("azure.core.pipeline.policies.http_logging_policy", "azure.monitor"):
        logging.getLogger(chatty).setLevel(logging.WARNING)  # a line per export otherwise
    configure_azure_monitor(
        connection_string=connection_string,
        disable_logging=True,
        enable_live_metrics=False,
        instrumentation_options={"httpx": {"enabled": False}},  # the token path: not per call
    )
    meter = otel_metrics.get_meter("pichat_trio")
    bridged = bridge_registry(metrics, meter)
    log.info("Azure Monitor: %d figures and request traces exported", bridged)
    return _Traced(app, OpenTelemetryMiddleware(app), trace.get_tracer("pichat_trio"))


def bridge_registry(metrics: Metrics, meter: Any) -> int:
    """An observable instrument per series of the registry; returns how many."""
    from opentelemetry.metrics import Observation

    snapshot: dict[str, Any] = {"at": -1.0, "samples": {}}

    def samples() -> dict[str, list[Any]]:
        """One collection of the registry per export, shared by every instrument."""
        now = time.monotonic()
        if now - snapshot["at"] > 1.0:
            by_name: dict[str, list[Any]] = {}
            for family in metrics.registry.collect():
                for sample in family.samples:
                    by_name.setdefault(sample.name, []).append(sample)
            snapshot.update(at=now, samples=by_name)
        found: dict[str, list[Any]] = snapshot["samples"]
        return found

    def reader(name: str) -> Callable[[Any], Iterable[Any]]:
        def observe(_options: Any) -> Iterable[Any]:
            for sample in samples().get(name, ()):
                yield Observation(sample.value, dict(sample.labels))

        return observe

    count = 0
    for family in metrics.registry.collect():
        for pattern in _SERIES.get(family.type, ("{}",)):
            name = pattern.format(family.name)
            if family.type in ("counter", "histogram", "summary"):
                create = meter.create_observable_counter
            else:
                create = meter.create_observable_gauge
            create(name, callbacks=[reader(name)], description=family.documentation)
            count += 1
    return count


_SERIES = {
    "counter": ("{}_total",),
    "histogram": ("{}_bucket", "{}_count", "{}_sum"),
    "summary": ("{}_count", "{}_sum"),
    "info": ("{}_info",),
}
"""A family's series by its type (one without samples yet, a labelled counter, has them later)."""


class _Traced:
    """HTTP through OpenTelemetry's middleware; each WebSocket in a span of its own."""

    def __init__(self, app: Asgi, http: Any, tracer: Any) -> None:
        self._app = app
        self._http = http
        self._tracer = tracer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            from opentelemetry.trace import SpanKind

            with self._tracer.start_as_current_span(
                f"WebSocket {scope['path']}",
                kind=SpanKind.SERVER,
                attributes={"url.path": scope["path"], "url.scheme": scope.get("scheme", "ws")},
            ):
                await self._app(scope, receive, send)
        else:
            await self._app(scope, receive, send)

    def __getattr__(self, name: str) -> Any:  # the wrapped app's attributes, for the server
        return getattr(self._app, name)
