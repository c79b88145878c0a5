"""Azure Speech's WebSocket messages, as the SDK writes and reads them (sans-IO).

The service speaks one framing on its recognition and synthesis sockets:

- a text message is header lines (``Path``, ``X-RequestId``,
  ``X-Timestamp``, ``Content-Type``), an empty line, then the body (JSON for
  every message this project reads);
- a binary message is a 2-byte big-endian length of the header lines, the
  header lines, then the payload (audio).

``X-RequestId`` names a turn: every message of one recognition or synthesis
carries it, and the service's answers carry it back. This module builds and
parses those messages, and names the error of a refused handshake: no socket, no trio.
"""

from __future__ import annotations

import json
import logging
import platform
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ... import __version__
from ...errors import PichatError, UpstreamError, UpstreamUnavailable

__all__ = [
    "ServiceMessage",
    "audio_message",
    "client_context",
    "handshake_error",
    "new_id",
    "parse_message",
    "text_message",
    "unreachable_error",
    "wav_stream_header",
]


log = logging.getLogger(__name__)


def new_id() -> str:
    """A request or connection id as the service expects one: 32 hex digits."""
    return uuid.uuid4().hex


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _head(headers: list[tuple[str, str]]) -> str:
    return "".join(f"{name}: {value}\r\n" for name, value in headers)


def text_message(
    path: str,
    body: dict[str, Any] | str,
    request_id: str | None = None,
    *,
    content_type: str | None = "application/json",
) -> str:
    """A text message; ``request_id`` for a turn's messages (not ``speech.config``).
    A dict body is sent as JSON; the SDK names the body's type on some messages only."""
    headers = [("Path", path)]
    if request_id is not None:
        headers.append(("X-RequestId", request_id))
    headers.append(("X-Timestamp", _stamp()))
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return _head(headers) + "\r\n" + text


def client_context(**extra: Any) -> dict[str, Any]:
    """``speech.config``'s body: who the client is, and ``extra`` (the audio source)."""
    system = {"name": "pichat", "version": __version__, "lang": "Python"}
    os = {"platform": platform.system(), "name": platform.platform()}
    return {"context": {"system": system, "os": os, **extra}}


def unreachable_error(detail: str) -> PichatError:
    """The domain error for a service that could not be reached; ``detail`` is logged
    (without the key: the caller redacts it)."""
    log.warning("Azure Speech could not be reached: %s", detail)
    return UpstreamUnavailable("Azure Speech could not be reached")


def handshake_error(status: int) -> PichatError:
    """The domain error for a refused handshake (its HTTP status)."""
    log.warning("Azure Speech refused the connection (HTTP %d)", status)
    if status in (401, 403):
        return UpstreamError("Azure Speech refused the credentials")
    if status == 429 or status >= 500:
        return UpstreamUnavailable("Azure Speech could not be reached")
    return UpstreamError("Azure Speech failed")


def audio_message(request_id: str, payload: bytes, *, first: bool = False) -> bytes:
    """One binary ``audio`` message of a turn's stream; an empty payload ends it.
    The ``first`` carries the stream's WAV header and says so in ``Content-Type``."""
    headers = [("Path", "audio"), ("X-RequestId", request_id), ("X-Timestamp", _stamp())]
    if first:
        headers.append(("Content-Type", "audio/x-wav"))
    headers.append(("X-StreamId", "1"))
    head = _head(headers).encode("ascii")
    return len(head).to_bytes(2, "big") + head + payload


def wav_stream_header(sample_rate: int) -> bytes:
    """The RIFF header the SDK sends ahead of pushed PCM: mono 16-bit, sizes 0 (unknown)."""
    return (
        b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00"
        + sample_rate.to_bytes(4, "little")
        + (2 * sample_rate).to_bytes(4, "little")
        + b"\x02\x00\x10\x00data\x00\x00\x00\x00"
    )


@dataclass(frozen=True)
class ServiceMessage:
    """One message from the service: its path and request id, and its JSON body
    (a text message) or its payload (a binary one)."""

    path: str
    request_id: str
    body: dict[str, Any] = field(default_factory=dict)
    payload: bytes = b""


def parse_message(message: str | bytes) -> ServiceMessage:
    """Parse one message; raises ``ValueError`` when it is not in the service's framing."""
    if isinstance(message, str):
        head, sep, text = message.partition("\r\n\r\n")
        if not sep:
            raise ValueError("a text message without its empty line")
        headers = _headers(head)
        body = json.loads(text) if text.strip() else {}
        if not isinstance(body, dict):
            raise ValueError("a text message whose body is not a JSON object")
        return ServiceMessage(headers.get("path", ""), headers.get("x-requestid", ""), body=body)
    if len(message) < 2:
        raise ValueError("a binary message shorter than its header length")
    length = int.from_bytes(message[:2], "big")
    if 2 + length > len(message):
        raise ValueError("a binary message shorter than its headers")
    headers = _headers(message[2 : 2 + length].decode("ascii", errors="replace"))
    payload = bytes(message[2 + length :])
    return ServiceMessage(headers.get("path", ""), headers.get("x-requestid", ""), payload=payload)


def _headers(head: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
