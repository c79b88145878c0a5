"""Outgoing frames as text: encoded once, shared by every connection that gets them.

``encode.py`` builds one of these for a domain event when the first of a
user's connections takes it, and the others reuse it (``ports.Delivery``):
encoding happens once per event, not once per connection. ``TokenFrame``
is the hot path: one per upstream token, mergeable with the next token of
the same message when an outbox falls behind.

An event's text may also be several frames' texts (a tuple) that go out
together, in order, in one write: the events that end an answer, for
example. They are separate WebSocket messages on the wire; only the
system calls (and the client's reads) are shared.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Frame", "Texts", "TokenFrame", "encode_event", "frame_for"]

Texts = str | tuple[str, ...]
"""One frame's JSON text, or several frames' texts to be written together, in order."""

_encode = msgspec.json.Encoder().encode


def encode_event(action: str, payload: Any, request_id: str | None = None) -> str:
    """The JSON text of one server-to-client frame."""
    if request_id is None:
        return _encode({"action": action, "payload": payload}).decode()
    return _encode({"action": action, "payload": payload, "request_id": request_id}).decode()


class Frame:
    """An event for all of a user's connections.

    ``origin`` is the id of the connection whose request caused the event.
    That connection gets ``origin_text`` instead of ``text`` (the same event
    carrying its ``request_id``), or nothing when ``origin_text`` is None
    (it was answered directly, for example with ``message_sent``). A
    ``text`` of None addresses the origin alone.
    """

    __slots__ = ("origin", "origin_text", "text")

    def __init__(
        self, text: Texts | None, origin: str | None = None, origin_text: Texts | None = None
    ) -> None:
        self.text = text
        self.origin = origin
        self.origin_text = origin_text

    def text_for(self, connection_id: str) -> Texts | None:
        if self.origin is not None and connection_id == self.origin:
            return self.origin_text
        return self.text

    def to_wire(self) -> bytes:
        """For a backplane between server instances."""
        return _encode([0, self.text, self.origin, self.origin_text])


class TokenFrame:
    """A ``message_stream`` frame with ``finished: false``.

    Kept as parts so that a writer behind on its outbox can merge the
    tokens of one message into a single frame (``merge``). ``prefix`` is
    the encoded envelope up to the token, shared by all frames of a message.
    """

    __slots__ = ("_text", "message_id", "prefix", "token")

    def __init__(self, prefix: str, message_id: str, token: str) -> None:
        self.prefix = prefix
        self.message_id = message_id
        self.token = token
        self._text: str | None = None

    @staticmethod
    def prefix_for(conversation_id: str, message_id: str) -> str:
        head = _encode(
            {"conversation_id": conversation_id, "message_id": message_id, "finished": False}
        ).decode()
        return '{"action":"message_stream","payload":' + head[:-1] + ',"token":'

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.prefix + _encode(self.token).decode() + "}}"
        return self._text

    def text_for(self, connection_id: str) -> str:
        return self.text

    def merged(self, later: TokenFrame) -> TokenFrame:
        return TokenFrame(self.prefix, self.message_id, self.token + later.token)

    def to_wire(self) -> bytes:
        return _encode([1, self.prefix, self.message_id, self.token])


def frame_for(wire: bytes) -> Frame | TokenFrame:
    """Rebuild a frame sent by ``to_wire`` on another server instance."""
    kind, a, b, c = msgspec.json.decode(wire)
    if kind == 1:
        return TokenFrame(a, b, c)
    return Frame(_texts(a), b, _texts(c))


def _texts(value: str | list[str] | None) -> Texts | None:
    return tuple(value) if isinstance(value, list) else value
