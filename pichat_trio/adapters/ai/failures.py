"""What an upstream failure means for the user, and whether to try again.

The I/O edge of the AI adapters: HTTP statuses and ``httpx`` exceptions
become ``UpstreamError`` (refused or failed: trying again will not help) or
``UpstreamUnavailable`` (unreachable, busy or timed out). Messages are safe
to show a user; details for the operator go to the log, never the API key or
the conversation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx
import msgspec

from ...errors import PichatError, UpstreamError, UpstreamUnavailable
from .retry import RETRYABLE_STATUSES

__all__ = [
    "CONTENT_FILTERED",
    "DROPPED",
    "RATE_LIMITED",
    "TIMED_OUT",
    "UNREACHABLE",
    "Failure",
    "failure_for_exception",
    "failure_for_status",
]

logger = logging.getLogger(__name__)

RATE_LIMITED = "The AI service is rate limiting requests; try again shortly."
UNREACHABLE = "The AI service could not be reached."
TIMED_OUT = "The AI service did not answer in time."
DROPPED = "The connection to the AI service was lost mid-answer."
CONTENT_FILTERED = "The message was blocked by the AI service's content filter."
_POOL_FULL = "Too many answers are being generated right now; try again shortly."
_MALFORMED = "The AI service sent a malformed answer."

_CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})
_LOGGED_BODY_CHARS = 300


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt: the error to raise if it is the last one."""

    error: PichatError
    retryable: bool
    retry_after: float | None = None


class _ErrorDetail(msgspec.Struct):
    code: str | int | None = None
    message: str | None = None


class _ErrorBody(msgspec.Struct):
    error: _ErrorDetail | None = None


def _error_detail(body: bytes) -> _ErrorDetail:
    try:
        parsed = msgspec.json.decode(body, type=_ErrorBody)
    except msgspec.DecodeError:
        return _ErrorDetail(message=body[:_LOGGED_BODY_CHARS].decode("utf-8", "replace"))
    return parsed.error or _ErrorDetail()


def failure_for_status(
    status: int, body: bytes, retry_after: float | None, *, provider: str
) -> Failure:
    """Classify a non-200 answer; ``body`` is the (bounded) error body."""
    detail = _error_detail(body)
    code = str(detail.code) if detail.code is not None else None
    message = (detail.message or "")[:_LOGGED_BODY_CHARS]
    logger.warning("%s answered HTTP %d: code=%s message=%s", provider, status, code, message)
    if status == 400 and code in _CONTENT_FILTER_CODES:
        return Failure(UpstreamError(CONTENT_FILTERED), retryable=False)
    if status == 429:
        return Failure(UpstreamUnavailable(RATE_LIMITED), retryable=True, retry_after=retry_after)
    if status in RETRYABLE_STATUSES:
        error = UpstreamUnavailable(
            f"The AI service is unavailable right now (HTTP {status}); try again shortly."
        )
        return Failure(error, retryable=True, retry_after=retry_after)
    if status in (401, 403, 404):
        if status == 404:
            logger.warning("%s: check the endpoint, API version and deployment name", provider)
        else:
            logger.warning("%s: check the API key", provider)
        return Failure(
            UpstreamError(f"The AI service refused the request (HTTP {status})."), retryable=False
        )
    if 400 <= status < 500:
        return Failure(
            UpstreamError(f"The AI service rejected the request (HTTP {status})."),
            retryable=False,
        )
    return Failure(UpstreamError(f"The AI service failed (HTTP {status})."), retryable=False)


def failure_for_exception(exc: httpx.HTTPError, *, provider: str, mid_stream: bool) -> Failure:
    """Classify an ``httpx`` exception raised while sending or streaming.

    Connection failures before the answer began are retried (a pooled
    keep-alive connection the server had closed is the common case); a read
    timeout is not, since the upstream may still be working on the request.
    """
    logger.warning("%s request failed: %s: %s", provider, type(exc).__name__, exc)
    if isinstance(exc, httpx.PoolTimeout):
        return Failure(UpstreamUnavailable(_POOL_FULL), retryable=False)
    if isinstance(exc, httpx.ReadTimeout):
        return Failure(UpstreamUnavailable(TIMED_OUT), retryable=False)
    if isinstance(exc, httpx.DecodingError):
        return Failure(UpstreamError(_MALFORMED), retryable=False)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.ProxyError):
        return Failure(UpstreamUnavailable(UNREACHABLE), retryable=False)
    if mid_stream:
        return Failure(UpstreamUnavailable(DROPPED), retryable=True)
    return Failure(UpstreamUnavailable(UNREACHABLE), retryable=True)
