"""The in-process hub: a dict of each user's open connections.

``publish`` hands the same frame object to each of the user's connections;
each outbox bounds itself, so publishing never blocks and one slow device
never slows another. Cost per event: one dict lookup plus one ``deliver``
per connection of that user, whatever the number of users.
"""

from __future__ import annotations

from types import TracebackType

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

    def subscribe(self, user_id: str, subscriber: Subscriber) -> _Subscription:
        """An async context manager: ``subscriber`` gets the user's frames inside it."""
        return _Subscription(self._users, user_id, subscriber)

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
