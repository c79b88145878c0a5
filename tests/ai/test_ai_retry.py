"""Backoff and Retry-After rules, without a network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from pichat_trio.adapters.ai.retry import RetryPolicy, parse_retry_after


def headers(**values: str) -> httpx.Headers:
    return httpx.Headers({name.replace("_", "-"): value for name, value in values.items()})


def test_retry_after_ms_is_preferred() -> None:
    assert parse_retry_after(headers(retry_after="3", retry_after_ms="2500")) == 2.5


def test_retry_after_seconds() -> None:
    assert parse_retry_after(headers(retry_after="3")) == 3.0
    assert parse_retry_after(headers(Retry_After="1.5")) == 1.5


def test_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    seconds = parse_retry_after(headers(retry_after=format_datetime(when, usegmt=True)))
    assert seconds is not None and 25 <= seconds <= 30


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf"])
def test_unusable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after(headers(retry_after=value)) is None


def test_negative_retry_after_means_now() -> None:
    assert parse_retry_after(headers(retry_after="-4")) == 0.0
    assert parse_retry_after(httpx.Headers()) is None


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_only_shortens() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=0.5)
    delays = [policy.delay(1) for _ in range(200)]
    assert all(0.5 <= d <= 1.0 for d in delays)


def test_server_wait_is_honoured_as_sent() -> None:
    assert RetryPolicy(jitter=1.0).delay(1, retry_after=7.0) == 7.0


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"max_total": -1.0}, {"jitter": 1.5}, {"base_delay": -1.0}]
)
def test_bad_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
