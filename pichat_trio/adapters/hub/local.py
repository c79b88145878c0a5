"""The in-process hub: a dict of each user's open connections.

``publish`` hands one ``Delivery`` of the event to each of the user's
connections (the first to encode it shares the frame with the others);
each outbox bounds itself, so publishing never blocks and one slow device
never slows another. Cost per event: one dict lookup plus one ``deliver``
per connection of that user, whatever the number of users.
"""

from __future__ import annotations

from collections.abc import KeysView
from types import TracebackType

from ...domain.events import DomainEvent
from ...ports import Delivery, Subscriber

__all__ = ["LocalHub"]


class LocalHub:
    def __init__(self) -> None:
        self._users: dict[str, dict[str, Subscriber]] = {}

    async def publish(self, user_id: str, event: DomainEvent) -> None:
        self.deliver_local(user_id, event)

    def deliver_local(self, user_id: str, event: DomainEvent) -> None:
        """To this instance's connections of ``user_id`` (nothing made when there are none)."""
        subscribers = self._users.get(user_id)
        if subscribers:
            delivery = Delivery(event)
            for subscriber in tuple(subscribers.values()):
                subscriber.deliver(delivery)

    def subscribe(self, user_id: str, subscriber: Subscriber) -> _Subscription:
        """An async context manager: ``subscriber`` gets the user's frames inside it."""
        return _Subscription(self._users, user_id, subscriber)

    def users(self) -> KeysView[str]:
        """The users with a connection here."""
        return self._users.keys()

    def connection_count(self, user_id: str | None = None) -> int:
        if user_id is not None:
            return len(self._users.get(user_id, ()))
        return sum(map(len, self._users.values()))


class _Subscription:
    """A plain object rather than an ``asynccontextmanager``: one of these lives as long as
    each connection, and a suspended generator frame costs several times its size."""

    __slots__ = ("_subscriber", "_user_id", "_users")

    def __init__(
        self, users: dict[str, dict[str, Subscriber]], user_id: str, subscriber: Subscriber
    ) -> None:
        self._users = users
        self._user_id = user_id
        self._subscriber = subscriber

    async def __aenter__(self) -> None:
        self._users.setdefault(self._user_id, {})[self._subscriber.id] = self._subscriber

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        subscribers = self._users.get(self._user_id)
        if subscribers is not None:
            subscribers.pop(self._subscriber.id, None)
            if not subscribers:
                del self._users[self._user_id]
