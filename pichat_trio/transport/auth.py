"""The WebSocket handshake checks: origin, then token, before any upgrade.

The token comes from ``?token=`` (the seed) or ``Authorization: Bearer``.
The default user's token is compared in constant time in memory; other
users' tokens are looked up by their SHA-256 (a random token's hash leaks
nothing an attacker can steer).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qs

from ..models import User

__all__ = ["Authenticator", "origin_allowed", "token_from"]


def token_from(query_string: bytes, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    tokens = parse_qs(query_string.decode("latin-1")).get("token")
    return tokens[0] if tokens else None


def origin_allowed(allowed: frozenset[str], headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """No list means any origin; a request without an Origin header is not a browser's."""
    if not allowed:
        return True
    for name, value in headers:
        if name.lower() == b"origin":
            return value.decode("latin-1").rstrip("/") in allowed
    return True


class Authenticator:
    def __init__(
        self,
        default_token: str,
        default_user: User,
        lookup: Callable[[str], Awaitable[User | None]],
    ) -> None:
        self._default_token = default_token.encode()
        self._default_user = default_user
        self._lookup = lookup

    async def user_for(self, token: str | None) -> User | None:
        if not token:
            return None
        if hmac.compare_digest(token.encode(), self._default_token):
            return self._default_user
        return await self._lookup(token)
