"""``GET /metrics``: the app's figures in Prometheus' text format, behind an optional token.

With ``METRICS_TOKEN`` set, a scrape needs ``Authorization: Bearer TOKEN``
(compared in constant time); without it, 401. The token of the API does not
open it: a scraper's credentials and a user's are not the same thing.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from ..metrics import CONTENT_TYPE, Metrics

__all__ = ["metrics_response"]

Headers = list[tuple[bytes, bytes]]


def metrics_response(
    metrics: Metrics, token: str, headers: Iterable[tuple[bytes, bytes]]
) -> tuple[int, Headers, bytes]:
    """The status, headers and body of the answer to a scrape."""
    if token and not _authorized(token, headers):
        return (
            401,
            [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
            b'{"error":"missing or wrong metrics token"}',
        )
    return 200, [(b"content-type", CONTENT_TYPE.encode())], metrics.render()


def _authorized(token: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer":
                return hmac.compare_digest(credentials.strip(), token.encode())
    return False
