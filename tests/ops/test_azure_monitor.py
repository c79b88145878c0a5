"""APPLICATIONINSIGHTS_CONNECTION_STRING: the figures and request traces reach Azure Monitor.

The real ``pichat serve`` (a child process: the distro configures process-wide
providers) with the real ``azure-monitor-opentelemetry`` exporter, pointed at
a fake ingestion endpoint that speaks the service's ``/v2.1/track``.
"""

from __future__ import annotations

import os
import sys

import httpx
import pytest
import trio
from support import handshake_status, run_server_process

from pichat_trio.client import open_client
from pichat_trio.fakes.azure_monitor import FakeIngestion

pytest.importorskip("azure.monitor.opentelemetry")

TOKEN = "monitor-token-0123456789"


def _exported(fake: FakeIngestion) -> bool:
    requests = {request["name"] for request in fake.requests()}
    figures = {"pichat_connections", "pichat_handshakes_refused_total"}
    return figures <= fake.metric_names() and {"GET /healthz", "WebSocket /ws"} <= requests


async def test_figures_and_request_traces_are_exported(tmp_path):
    fake = FakeIngestion()
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "API_TOKEN": TOKEN,
        "METRICS_TOKEN": "m" * 24,
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pichat.db'}",
        "AI_PRECONNECT": "0",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",  # milliseconds; the default is a minute
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        # The distro's default sampler is rate limited, and its budget starts empty.
        "OTEL_TRACES_SAMPLER": "always_on",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",  # no calls beyond the fake
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "TMPDIR": str(tmp_path),  # the exporter's retry storage
    }
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        env["APPLICATIONINSIGHTS_CONNECTION_STRING"] = fake.connection_string
        argv = [sys.executable, "-m", "pichat_trio", "serve"]
        async with run_server_process(argv, env, tmp_path) as server:
            with trio.fail_after(60):
                async with httpx.AsyncClient() as http:
                    assert (await http.get(f"{server.url}/healthz")).status_code == 200
                ws_url = server.url.replace("http", "ws", 1)
                async with open_client(ws_url, TOKEN) as client:
                    assert (await client.call("ping"))["action"] == "pong"
                assert await handshake_status(f"{ws_url}/ws?token=wrong-token-00000000") == 401
                await fake.wait_for(_exported)
        nursery.cancel_scope.cancel()
    assert server.status == 0
    assert {path.lstrip("/") for path in fake.paths} == {"v2.1/track"}
    kinds = {envelope["data"]["baseType"] for envelope in fake.envelopes}
    assert {"MetricData", "RequestData"} <= kinds
    assert "MessageData" not in kinds  # logs stay on stdout, redacted
    assert not any("azure.core" in line for line in server.lines)
    assert TOKEN not in str(fake.envelopes)
    keys = {envelope["iKey"] for envelope in fake.envelopes}
    assert keys == {fake.instrumentation_key}
    websocket = next(r for r in fake.requests() if r["name"] == "WebSocket /ws")
    assert websocket["success"] is True  # the connection, handshake to close
