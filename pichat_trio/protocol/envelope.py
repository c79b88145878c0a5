"""The envelope of client frames: sans-IO decoding, one function.

``decode_request(text)`` returns a ``Request`` whose payload is still raw
JSON; the router (dispatch/) decodes it against the action's type. Every refusal is
a ``ProtocolError`` carrying its docs/protocol.md code.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .errors import ProtocolError
from .schemas import field_error

__all__ = [
    "MAX_REQUEST_ID_CHARS",
    "Request",
    "decode_payload",
    "decode_request",
    "request_context",
]

MAX_REQUEST_ID_CHARS = 64


class Request(msgspec.Struct):
    action: str
    payload: msgspec.Raw = msgspec.Raw(b"null")
    request_id: Any = None


class _Context(msgspec.Struct):
    action: Any = None
    request_id: Any = None


_decode = msgspec.json.Decoder(Request).decode
_decode_context = msgspec.json.Decoder(_Context).decode
_TOO_DEEP = "the frame is nested too deeply"


def request_context(text: str | bytes) -> tuple[str | None, str | None]:
    """``(action, request_id)`` of a frame, as far as they can be read, for the error
    that refuses it; None for what is missing or not of the envelope's shape."""
    try:
        context = _decode_context(text)
    except (msgspec.DecodeError, RecursionError):
        return None, None
    action, request_id = context.action, context.request_id
    return (
        action[:64] if isinstance(action, str) else None,
        request_id
        if isinstance(request_id, str) and len(request_id) <= MAX_REQUEST_ID_CHARS
        else None,
    )


def decode_request(text: str | bytes) -> Request:
    try:
        request = _decode(text)
    except msgspec.ValidationError as error:
        field, message = field_error(error, root="")
        if not field:  # the frame itself is not an object
            raise ProtocolError("invalid_json", "expected a JSON object") from None
        raise ProtocolError("invalid_request", f"{field.lstrip('.')}: {message}") from None
    except msgspec.DecodeError:
        raise ProtocolError("invalid_json", "the frame is not valid JSON") from None
    except RecursionError:  # msgspec's own depth limit, before Python's stack runs out
        raise ProtocolError("invalid_json", _TOO_DEEP) from None
    request_id = request.request_id
    if request_id is not None and (
        not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID_CHARS
    ):
        request.request_id = None
        raise ProtocolError(
            "invalid_request",
            f"request_id: expected a string of at most {MAX_REQUEST_ID_CHARS} characters",
        )
    return request


def decode_payload(request: Request, schema: type[Any]) -> Any:
    """The payload of ``request`` as ``schema``; a missing or null payload is ``{}``."""
    raw = request.payload
    data = b"{}" if bytes(raw) == b"null" else raw
    try:
        return msgspec.json.decode(data, type=schema)
    except msgspec.ValidationError as error:
        field, message = field_error(error)
        raise ProtocolError("invalid_request", f"{field}: {message}", request.request_id) from None
    except RecursionError:
        raise ProtocolError("invalid_json", _TOO_DEEP, request.request_id) from None
