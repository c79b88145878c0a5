"""The WebSocket handshake checks: origin, then token, before any upgrade.

The token comes from ``?token=`` (the seed) or ``Authorization: Bearer``.
The default user's token is compared in constant time in memory; other
users' tokens are looked up by their SHA-256 (a random token's hash leaks
nothing an attacker can steer). A token the lookup did not find is
remembered for ``miss_seconds`` (at most ``max_misses`` of them), so a
client retrying a wrong token costs no database lookup each time; a
token that is found is never cached, so a revocation takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qs

import trio

from ..models import User
from ..settings import normal_origin

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
    """No list means any origin; a request without an Origin header is not a browser's.

    ``allowed`` holds ``normal_origin`` forms. A request with more than one
    Origin header is refused whatever they say: a browser sends one, and
    which of several a proxy or framework would pick is anyone's guess.
    """
    origins = [value for name, value in headers if name.lower() == b"origin"]
    if len(origins) > 1:
        return False
    if not allowed or not origins:
        return True
    return normal_origin(origins[0].decode("latin-1")) in allowed


class Authenticator:
    def __init__(
        self,
        default_token: str,
        default_user: User,
        lookup: Callable[[str], Awaitable[User | None]],
        miss_seconds: float = 5.0,
        max_misses: int = 10_000,
    ) -> None:
        self._default_token = default_token.encode()
        self._default_user = default_user
        self._lookup = lookup
        self._miss_seconds = miss_seconds
        self._max_misses = max_misses
        self._misses: OrderedDict[bytes, float] = OrderedDict()  # token digest -> expiry

    async def user_for(self, token: str | None) -> User | None:
        if not token:
            return None
        encoded = token.encode()
        if hmac.compare_digest(encoded, self._default_token):
            return self._default_user
        digest = hashlib.sha256(encoded).digest()
        now = trio.current_time()
        misses = self._misses
        expiry = misses.get(digest)
        if expiry is not None:
            if expiry > now:
                return None
            del misses[digest]
        user = await self._lookup(token)
        if user is None:
            misses[digest] = now + self._miss_seconds
            if len(misses) > self._max_misses:
                misses.popitem(last=False)  # the oldest entry: they expire in order
        return user
