"""The server's figures, in Prometheus' text format at ``GET /metrics``.

Each app owns a ``Metrics`` with a registry of its own (several servers in
one process, as in the tests, never clash). What changes per token is not
counted per token: an answer adds its token count once, when it ends, and
the gauges (open connections, active generations) are read when scraped.
Everything else moves once per handshake, answer, speech call or database
call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import prometheus_client as prometheus
import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["CONTENT_TYPE", "AnswerTiming", "Metrics"]

CONTENT_TYPE = prometheus.CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
"""Seconds: a first token takes from tens of milliseconds to tens of seconds."""

_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Seconds: SQLite answers in microseconds, Azure SQL in milliseconds."""


@dataclass(slots=True)
class AnswerTiming:
    """When (trio time) an answer's upstream call began and its first token came."""

    started: float | None = None
    first_token: float | None = None


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        prometheus.ProcessCollector(registry=registry)
        prometheus.PlatformCollector(registry=registry)
        prometheus.GCCollector(registry=registry)
        gauge = partial(Gauge, registry=registry)
        counter = partial(Counter, registry=registry)
        latency = partial(Histogram, buckets=_LATENCY_BUCKETS, registry=registry)
        self.connections = gauge("pichat_connections", "open WebSocket connections")
        self.generations = gauge("pichat_generations_active", "answers being generated now")
        self.handshakes_refused = counter(
            "pichat_handshakes_refused", "WebSocket handshakes refused, by reason", ["reason"]
        )
        self.answers = counter(
            "pichat_answers", "answers ended, by finish reason", ["finish_reason"]
        )
        self.tokens = counter(
            "pichat_tokens_streamed", "tokens (text fragments) streamed to clients"
        )
        self.time_to_first_token = latency(
            "pichat_time_to_first_token_seconds", "from the upstream request to the first token"
        )
        self.upstream_seconds = latency(
            "pichat_upstream_seconds", "whole upstream AI calls, from the request to the last token"
        )
        self.upstream_errors = counter(
            "pichat_upstream_errors",
            "failed upstream calls, by the protocol's error code",
            ["kind"],
        )
        self.speech_calls = counter(
            "pichat_speech_calls",
            "speech calls, by operation and outcome",
            ["operation", "outcome"],
        )
        self.db_seconds = Histogram(
            "pichat_db_call_seconds",
            "database calls, from the start of their worker thread to the result",
            buckets=_DB_BUCKETS,
            registry=registry,
        )
        self.outbox_stalls = counter(
            "pichat_outbox_stalls", "connections closed because their client stopped reading"
        )
        self.outbox_dropped = counter(
            "pichat_outbox_dropped_frames", "frames dropped with a stalled connection's outbox"
        )

    def watch(self, connections: Callable[[], int], generations: Callable[[], int]) -> None:
        """The gauges read their value from the app when scraped."""
        self.connections.set_function(lambda: float(connections()))
        self.generations.set_function(lambda: float(generations()))

    def answer_ended(
        self, finish_reason: str, tokens: int, timing: AnswerTiming, error: Exception | None
    ) -> None:
        """One answer's figures, all at once when it ends."""
        self.answers.labels(finish_reason).inc()
        if tokens:
            self.tokens.inc(tokens)
        started = timing.started
        if started is not None:
            self.upstream_seconds.observe(trio.current_time() - started)
            if timing.first_token is not None:
                self.time_to_first_token.observe(timing.first_token - started)
        if error is not None:
            self.upstream_errors.labels(getattr(error, "code", "internal_error")).inc()

    def outbox_stalled(self, dropped: int) -> None:
        """A connection was closed for not reading, with ``dropped`` frames still queued."""
        self.outbox_stalls.inc()
        if dropped:
            self.outbox_dropped.inc(dropped)

    @contextmanager
    def speech_call(self, operation: str) -> Iterator[None]:
        """Count the call in the block by its outcome: ``ok``, its error's code,
        ``cancelled``, or ``closed`` (a stream its consumer stopped reading)."""
        outcome = "ok"
        try:
            yield
        except GeneratorExit:
            outcome = "closed"
            raise
        except BaseException as exc:
            outcome = getattr(exc, "code", None) or (
                "cancelled" if isinstance(exc, trio.Cancelled) else "internal_error"
            )
            raise
        finally:
            self.speech_calls.labels(operation, outcome).inc()

    def render(self) -> bytes:
        return prometheus.generate_latest(self.registry)
