"""Whether this instance reaches Redis, and the backplane's figures at ``/metrics``.

One warning when the link goes down (or cannot be made at start-up), one
line when it is back; ``pichat_backplane_up`` says which, and
``pichat_backplane_outages`` counts the losses. While it is down, each user's
own connections keep working on their instance; only cross-instance
delivery stops (``pichat_backplane_dropped_events``).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge
from trio_util import AsyncValue

__all__ = ["Link"]

log = logging.getLogger(__name__)


class Link:
    def __init__(self, registry: CollectorRegistry, where: str) -> None:
        self.where = where
        self.up = AsyncValue(False)
        self._warned = False
        self._ever_up = False
        self.state = Gauge(
            "pichat_backplane_up", "1 while the Redis backplane is connected", registry=registry
        )
        self.outages = Counter(
            "pichat_backplane_outages", "times the Redis backplane was lost", registry=registry
        )
        self.published = Counter(
            "pichat_backplane_messages_published",
            "Redis messages published (a batch of one user's events each)",
            registry=registry,
        )
        self.published_events = Counter(
            "pichat_backplane_events_published",
            "events sent to other instances (tokens of one answer merged within a batch)",
            registry=registry,
        )
        self.received = Counter(
            "pichat_backplane_messages_received",
            "Redis messages from other instances delivered here",
            registry=registry,
        )
        self.dropped = Counter(
            "pichat_backplane_dropped_events",
            "events not sent to other instances because the backplane was down",
            registry=registry,
        )

    def restored(self) -> None:
        if self.up.value:
            return
        where = self.where
        if self._ever_up or self._warned:
            log.warning("Redis backplane at %s is back: delivery across instances resumes", where)
        else:
            log.info("Redis backplane: connected to %s", where)
        self._ever_up = True
        self._warned = False
        self.up.value = True
        self.state.set(1)

    def lost(self, error: BaseException) -> None:
        """The link failed (``error``); warns once per outage."""
        was_up = self.up.value
        self.up.value = False
        self.state.set(0)
        if was_up:
            self.outages.inc()
        if not self._warned:
            self._warned = True
            log.warning(
                "Redis backplane at %s unreachable (%s): each instance serves its own "
                "connections; cross-instance delivery stops until it is back",
                self.where,
                _reason(error),
            )


def _reason(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
