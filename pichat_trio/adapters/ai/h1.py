"""HTTP/1.1 for talking to the AI service: the client side, sans-IO.

Only what a chat request needs: serialise a request head, parse a response
head, and de-frame a response body (``Content-Length``, ``chunked``, or read
until the server closes). The I/O is in ``pool.py``.

This is the hot path of every answer: the upstream sends one chunk per
token, so ``BodyReader.feed`` runs ten thousand times a second at 200
streams. It works on the bytes the socket returned, with one slice per body
piece and no copies of the unread rest in the common case (whole chunks per
read).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_HEAD_BYTES",
    "BodyReader",
    "ProtocolError",
    "ResponseHead",
    "parse_response_head",
    "request_head",
]

MAX_HEAD_BYTES = 64 * 1024
"""Bound on a response head, and on a chunk-size or trailer line."""

_MAX_LINE = 4096
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) (\d{3})(?: (.*))?")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ProtocolError(Exception):
    """The server's bytes are not HTTP/1.1 we can read."""


def request_head(method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """``METHOD target HTTP/1.1`` and the header lines, ending in the blank line."""
    lines = [method + b" " + target + b" HTTP/1.1"]
    for name, value in headers:
        if b"\r" in value or b"\n" in value or not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header {name!r}")
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    """The connection may carry another request once this body is read."""

    def body_reader(self) -> BodyReader:
        """A reader for the body this head announces (the request was not HEAD)."""
        if self.status in (204, 304):
            return BodyReader(length=0)
        values = {name: value for name, value in self.headers if name in _FRAMING}
        encoding = values.get(b"transfer-encoding")
        if encoding is not None:
            if encoding.strip().lower() != b"chunked":
                raise ProtocolError(f"unsupported transfer-encoding {encoding!r}")
            return BodyReader(chunked=True)
        length = values.get(b"content-length")
        if length is None:
            return BodyReader()
        if not length.strip().isdigit():
            raise ProtocolError(f"invalid content-length {length!r}")
        return BodyReader(length=int(length))


_FRAMING = frozenset({b"transfer-encoding", b"content-length"})


def parse_response_head(data: bytes) -> tuple[ResponseHead, bytes] | None:
    """The head at the start of ``data`` and the bytes after it; None if incomplete.

    Interim (1xx) responses are skipped. Raises ``ProtocolError`` for a head
    that is malformed or longer than ``MAX_HEAD_BYTES``.
    """
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > MAX_HEAD_BYTES:
                raise ProtocolError("response head too long")
            return None
        lines = data[:end].split(b"\r\n")
        rest = data[end + 4 :]
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ProtocolError(f"invalid status line {lines[0][:100]!r}")
        minor, status = match.group(1), int(match.group(2))
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                raise ProtocolError(f"invalid header line {line[:100]!r}")
            headers.append((name.lower(), value.strip(b" \t")))
        if 100 <= status < 200:
            data = rest
            continue
        tokens = b",".join(value for name, value in headers if name == b"connection").lower()
        keep_alive = b"close" not in tokens if minor == b"1" else b"keep-alive" in tokens
        return ResponseHead(status, match.group(3) or b"", headers, keep_alive), rest


# BodyReader states
_DATA, _DATA_END, _SIZE, _TRAILER = range(4)


class BodyReader:
    """De-frames one response body: feed it what the socket returned.

    ``feed`` returns the body bytes that arrived; ``done`` turns true at the
    end of the body, and ``extra`` then holds any bytes read past it (which
    make the connection unusable for another request). ``eof`` says the
    server closed the connection: the end of a body read until close, an
    error for any other.
    """

    __slots__ = ("_chunked", "_pending", "_remaining", "_state", "done", "extra")

    def __init__(self, *, chunked: bool = False, length: int | None = None) -> None:
        self._chunked = chunked
        self._remaining = -1 if length is None else length
        self._state = _SIZE if chunked else _DATA
        self._pending = b""
        self.done = not chunked and length == 0
        self.extra = b""

    @property
    def until_close(self) -> bool:
        return not self._chunked and self._remaining < 0

    def feed(self, data: bytes) -> list[bytes]:
        if self.done:
            self.extra += data
            return []
        if not self._chunked:
            return self._feed_plain(data)
        if self._pending:
            data = self._pending + data
            self._pending = b""
        pieces: list[bytes] = []
        pos, size = 0, len(data)
        while pos < size:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, size - pos)
                pieces.append(data[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if size - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                pos += 2
                self._state = _SIZE
            else:
                end = data.find(b"\r\n", pos)
                if end < 0:
                    if size - pos > _MAX_LINE:
                        raise ProtocolError("chunk line too long")
                    break
                line = data[pos:end]
                pos = end + 2
                if state == _TRAILER:
                    if not line:
                        self.done = True
                        self.extra = data[pos:]
                        return pieces
                    continue
                digits = line.split(b";", 1)[0].strip(b" \t")
                if not _CHUNK_SIZE.fullmatch(digits):
                    raise ProtocolError(f"invalid chunk size line {line[:40]!r}")
                self._remaining = int(digits, 16)
                self._state = _DATA if self._remaining else _TRAILER
        self._pending = data[pos:]
        return pieces

    def _feed_plain(self, data: bytes) -> list[bytes]:
        if self._remaining < 0:
            return [data]
        if len(data) < self._remaining:
            self._remaining -= len(data)
            return [data]
        piece, self.extra = data[: self._remaining], data[self._remaining :]
        self._remaining = 0
        self.done = True
        return [piece] if piece else []

    def eof(self) -> None:
        """The server closed the connection; raises unless that ends the body."""
        if self.until_close:
            self.done = True
        elif not self.done:
            raise ProtocolError("the server closed the connection in the middle of the body")
