"""The in-process hub: a dict of each user's open connections.

``publish`` hands the same frame object to each of the user's connections;
each outbox bounds itself, so publishing never blocks and one slow device
never slows another. Cost per event: one dict lookup plus one ``deliver``
per connection of that user, whatever the number of users.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ...ports import Subscriber

__all__ = ["LocalHub"]


class LocalHub:
    def __init__(self) -> None:
        self._users: dict[str, dict[str, Subscriber]] = {}

    async def publish(self, user_id: str, frame: object) -> None:
        self.deliver_local(user_id, frame)

    def deliver_local(self, user_id: str, frame: object) -> None:
        subscribers = self._users.get(user_id)
        if subscribers:
            for subscriber in tuple(subscribers.values()):
                subscriber.deliver(frame)

    @asynccontextmanager
    async def subscribe(self, user_id: str, subscriber: Subscriber) -> AsyncIterator[None]:
        self._users.setdefault(user_id, {})[subscriber.id] = subscriber
        try:
            yield
        finally:
            subscribers = self._users.get(user_id)
            if subscribers is not None:
                subscribers.pop(subscriber.id, None)
                if not subscribers:
                    del self._users[user_id]

    def connection_count(self, user_id: str | None = None) -> int:
        if user_id is not None:
            return len(self._users.get(user_id, ()))
        return sum(map(len, self._users.values()))
