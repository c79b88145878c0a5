"""Protocol errors: each carries the docs/protocol.md code it deserves, and its frame."""

from __future__ import annotations

from typing import Any

from ..errors import PichatError, RateLimited, Unavailable
from .wire import encode_event

__all__ = ["ProtocolError", "error_frame", "error_frame_for"]


class ProtocolError(Exception):
    """A request the protocol layer refuses before any service sees it."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


def error_frame(
    code: str,
    message: str,
    request_action: str | None = None,
    request_id: str | None = None,
    **extra: Any,
) -> str:
    payload: dict[str, Any] = {"code": code, "message": message}
    if request_action is not None:
        payload["request_action"] = request_action
    payload.update(extra)
    return encode_event("error", payload, request_id)


def error_frame_for(error: PichatError, request_action: str | None, request_id: str | None) -> str:
    """The frame for a domain error raised by a service."""
    retry = error.retry_after_ms if isinstance(error, RateLimited | Unavailable) else None
    extra = {} if retry is None else {"retry_after_ms": retry}
    return error_frame(error.code, error.message, request_action, request_id, **extra)
