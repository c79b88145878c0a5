"""Who gets an event: the requester, all of a user's connections, or the others.

``Origin`` says which connection of which user made a request; services
use it to address events without knowing what a connection is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..events import Frame, Texts, encode_event
from ..models import User
from ..ports import Hub

__all__ = ["Fanout", "Origin"]


@dataclass(frozen=True, slots=True)
class Origin:
    user: User
    connection_id: str
    request_id: str | None = None


class Fanout:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def to_all(self, origin: Origin, action: str, payload: Any) -> None:
        """Every connection of the user; the requester's copy carries its request_id."""
        text = encode_event(action, payload)
        mine = (
            text if origin.request_id is None else encode_event(action, payload, origin.request_id)
        )
        await self.hub.publish(origin.user.id, Frame(text, origin.connection_id, mine))

    async def texts_to_others(self, origin: Origin, texts: Texts) -> None:
        """Encoded events for every connection of the user but the requester's."""
        await self.hub.publish(origin.user.id, Frame(texts, origin.connection_id, None))

    async def to_user(self, user_id: str, action: str, payload: Any) -> None:
        await self.hub.publish(user_id, Frame(encode_event(action, payload)))

    async def to_user_together(self, user_id: str, events: Sequence[tuple[str, Any]]) -> None:
        """Several events ``(action, payload)`` for every connection of the user, in
        order, each connection's written in one go."""
        await self.hub.publish(user_id, Frame(tuple(encode_event(a, p) for a, p in events)))
