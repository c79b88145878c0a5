"""Limits per user, over all of that user's connections: how many, and how many requests.

Per-connection limits alone let one token multiply them: a thousand sockets
of one user each had their own request budget, and every request that fans
out (``create_conversation``, ``update_settings``) was written to all of
them. Here each connected user has one entry, made by its first connection
and dropped with its last: a count checked at the handshake
(``MAX_CONNECTIONS_PER_USER``, HTTP 429 past it) and a token bucket every
request of every device takes from (``USER_RATE_LIMIT_*``). A connection
holds its user's bucket, so a request costs one more ``take``, no lookup.

Memory bound: one entry (a count and a bucket) per connected user.
"""

from __future__ import annotations

from collections.abc import KeysView

from .rate import TokenBucket

__all__ = ["UserLimits"]


class _Entry:
    __slots__ = ("bucket", "connections")

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket
        self.connections = 0


class UserLimits:
    def __init__(self, max_connections: int, rate: float, burst: float) -> None:
        self.max_connections = max_connections
        self._rate = rate
        self._burst = burst
        self._users: dict[str, _Entry] = {}

    def open(self, user_id: str) -> TokenBucket | None:
        """Count a new connection of ``user_id``; its user's request bucket, or None
        (nothing counted) when the user already has ``max_connections``."""
        entry = self._users.get(user_id)
        if entry is None:
            entry = self._users[user_id] = _Entry(TokenBucket(self._rate, self._burst))
        elif entry.connections >= self.max_connections:
            return None
        entry.connections += 1
        return entry.bucket

    def close(self, user_id: str) -> None:
        """One connection of ``user_id`` that ``open`` counted has ended."""
        entry = self._users[user_id]
        entry.connections -= 1
        if not entry.connections:
            del self._users[user_id]

    def connections(self, user_id: str) -> int:
        entry = self._users.get(user_id)
        return entry.connections if entry is not None else 0

    def users(self) -> KeysView[str]:
        """The ids of the users with a connection open."""
        return self._users.keys()
