"""Domain errors, shared by services and adapters.

Adapters map their vendors' exceptions to these at the I/O edge; the protocol
layer maps these to the error codes of docs/protocol.md. Nothing here knows about
WebSockets or JSON. ``message`` is safe to show to a user; details for the
operator go to the log where the error is raised.
"""

from __future__ import annotations

__all__ = [
    "Busy",
    "InvalidInput",
    "NotFound",
    "PichatError",
    "RateLimited",
    "Unavailable",
    "UnsupportedAudio",
    "UpstreamError",
    "UpstreamUnavailable",
]


class PichatError(Exception):
    """Base of every error a client may be told about."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PichatError):
    """A field is missing, of the wrong type or out of range; ``field`` names it."""

    code = "invalid_request"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class NotFound(PichatError):
    """No such object for this user (another user's object is not found either)."""

    code = "not_found"


class Busy(PichatError):
    """The conversation is already generating, or a per-connection cap is reached."""

    code = "busy"


class RateLimited(PichatError):
    """Too many requests; retry after ``retry_after_ms``."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class Unavailable(PichatError):
    """The database does not answer (an outage, a failover); retry after ``retry_after_ms``."""

    code = "unavailable"

    def __init__(self, message: str, retry_after_ms: int = 2000) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class UpstreamUnavailable(PichatError):
    """The AI or speech service could not be reached, or timed out."""

    code = "upstream_unavailable"


class UpstreamError(PichatError):
    """The AI or speech service refused the request or failed."""

    code = "upstream_error"


class UnsupportedAudio(PichatError):
    """Audio that is not of an accepted format."""

    code = "unsupported_audio"
