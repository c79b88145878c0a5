"""When to try an AI request again, and how long to wait first.

Pure functions and a frozen policy, so the rules are tested without a
network. The loop that sleeps lives in ``http_chat``; it uses ``trio.sleep``
so tests drive it with a mock clock.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy", "parse_retry_after"]

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Statuses that say "not now" rather than "not this request"."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff, before the first token only.

    ``max_attempts`` counts the first try. ``max_total`` (seconds) bounds the
    time from the first try to the start of the last one, so a user never
    waits longer than that for an answer to begin. ``jitter`` is the
    fraction of a computed backoff that is randomised, to spread retries of
    many streams that failed together; a server's ``Retry-After`` is
    honoured as sent.
    """

    max_attempts: int = 3
    max_total: float = 20.0
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_total < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next."""
        if retry_after is not None:
            return retry_after
        backoff = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return backoff * (1 - self.jitter * random.random())


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a server asked for, in seconds, or None.

    Azure sends ``retry-after-ms`` (preferred: finer) and ``retry-after``;
    the latter may be seconds or an HTTP date. ``headers`` must look up
    names case-insensitively, as ``httpx.Headers`` does.
    """
    value = headers.get("retry-after-ms")
    if value is not None:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _seconds(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return max(0.0, number) if math.isfinite(number) else None
