"""The wire form of a domain event, for a backplane between server instances.

Tagged JSON (``{"event": "token_added", ...}``): stable names, independent
of the client protocol's frames, decoded back to the same typed event.
"""

from __future__ import annotations

import msgspec

from .events import DomainEvent

__all__ = ["event_from_wire", "event_to_wire"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(DomainEvent).decode


def event_to_wire(event: DomainEvent) -> bytes:
    return _encode(event)


def event_from_wire(wire: bytes) -> DomainEvent:
    """Raises ``msgspec.DecodeError`` (a ``ValidationError`` for a wrong shape)."""
    return _decode(wire)
