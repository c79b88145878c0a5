"""Access tokens for Azure SQL from an Azure credential, refreshed before they expire.

``DB_AUTH=default`` signs in as Microsoft documents for Python on App
Service: ``azure-identity``'s ``DefaultAzureCredential`` (a managed
identity there, the developer's ``az login`` on a laptop) gives a token
for ``https://database.windows.net/.default``; the ODBC driver takes it,
UTF-16-LE with a 4-byte length in front, as the connection attribute
``SQL_COPT_SS_ACCESS_TOKEN`` (1256) at connect time. A token lasts about an
hour; a connection opened with one stays open after it expires, but a new
connection needs a valid one, so a token is fetched again five minutes
before its end.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["SQL_COPT_SS_ACCESS_TOKEN", "AccessTokens", "TokenCredential", "default_credential"]

SQL_COPT_SS_ACCESS_TOKEN = 1256
SCOPE = "https://database.windows.net/.default"


class TokenCredential(Protocol):
    """What ``azure.identity`` credentials offer: ``get_token(scope)`` with ``.token``
    and ``.expires_on`` (seconds since the epoch)."""

    def get_token(self, *scopes: str) -> Any: ...


class AccessTokens:
    """The ``attrs_before`` for pyodbc, with a token that is valid for a while yet."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        refresh_before: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credential = credential
        self._refresh_before = refresh_before
        self._clock = clock
        self._lock = threading.Lock()  # connections open in several worker threads
        self._packed = b""
        self._expires_on = 0.0

    def attrs_before(self) -> dict[int, bytes]:
        with self._lock:
            if self._clock() >= self._expires_on - self._refresh_before:
                token = self._credential.get_token(SCOPE)
                raw = token.token.encode("utf-16-le")
                self._packed = struct.pack(f"<I{len(raw)}s", len(raw), raw)
                self._expires_on = float(token.expires_on)
            return {SQL_COPT_SS_ACCESS_TOKEN: self._packed}


def default_credential(client_id: str = "") -> TokenCredential:
    """``DefaultAzureCredential`` (``client_id`` picks a user-assigned identity)."""
    from azure.identity import DefaultAzureCredential

    credential: TokenCredential = (
        DefaultAzureCredential(managed_identity_client_id=client_id)
        if client_id
        else DefaultAzureCredential()
    )
    return credential
