"""Opening a Redis client from ``REDIS_URL``, with coredis (anyio, so it runs under Trio).

``redis://[:password@]host:port/db`` or ``rediss://`` for TLS (Azure Cache
for Redis listens on 6380). With ``REDIS_AUTH=entra`` the password is an
Entra ID access token of the app's managed identity, fetched (and fetched
again before it expires) with ``azure-identity``; the user name is the
identity's object id, read from the token unless the URL names one.

No retry inside the client: the backplane notices a failure at once, says
so once, and reconnects with its own backoff.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import coredis
import trio
from coredis.credentials import AbstractCredentialProvider, UserPass
from coredis.retry import NoRetryPolicy

__all__ = ["EntraCredentials", "describe", "open_client"]

_ENTRA_SCOPE = "https://redis.azure.com/.default"
_REFRESH_MARGIN = 300.0  # seconds before expiry that a token is fetched anew


class EntraCredentials(AbstractCredentialProvider):
    """An Entra ID token as the password; asked for again when near its expiry."""

    def __init__(self, username: str = "", credential: Any = None) -> None:
        self._username = username
        self._credential = credential
        self._token: tuple[str, float] | None = None

    async def get_credentials(self) -> UserPass:
        if self._token is None or self._token[1] - _REFRESH_MARGIN < time.time():
            self._token = await trio.to_thread.run_sync(self._fetch)
        token = self._token[0]
        return UserPass(self._username or _object_id(token), token)

    def _fetch(self) -> tuple[str, float]:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential

            self._credential = DefaultAzureCredential()
        access = self._credential.get_token(_ENTRA_SCOPE)
        return access.token, float(access.expires_on)


def _object_id(token: str) -> str:
    """The ``oid`` claim of a JWT: the identity's object id, Azure Cache's user name."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return str(claims["oid"])
    except (IndexError, KeyError, ValueError) as error:
        raise ValueError("REDIS_AUTH=entra: the token names no object id (oid)") from error


def describe(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"


def open_client(url: str, auth: str = "password", credential: Any = None) -> coredis.Redis[bytes]:
    """A client for ``url`` (not connected yet: enter it with ``async with``).

    ``credential``: for ``auth="entra"``, an ``azure.identity`` credential (by
    default ``DefaultAzureCredential``: the managed identity on App Service)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"REDIS_URL={describe(url)!r}: expected redis:// or rediss://host")
    try:
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        raise ValueError("REDIS_URL: the path must be a database number") from None
    options: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port or 6379,
        "db": db,
        "retry_policy": NoRetryPolicy(),
        "connect_timeout": 5,
        "stream_timeout": 10,
    }
    username = unquote(parts.username or "")
    if auth == "entra":
        options["credential_provider"] = EntraCredentials(username, credential)
    elif parts.password:
        options["username"] = username or None
        options["password"] = unquote(parts.password)
    if parts.scheme == "rediss":
        options["ssl_context"] = ssl.create_default_context()
    return coredis.Redis(**options)
