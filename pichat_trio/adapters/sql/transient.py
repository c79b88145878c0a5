"""Which database errors are transient, and retrying them with backoff and jitter.

Azure SQL reports a failover, a throttled or paused database and a dropped
connection by error numbers that Microsoft lists as transient; the client
is expected to wait a little and try again. PostgreSQL says the same with
the SQLSTATE classes of a lost connection and of a server starting or
shutting down, SQLite with a locked database.

What is retried (``engine.py`` and ``repository.py`` apply it): opening a
connection (nothing was sent yet) and reads, which change nothing. A write
is never retried here: when its connection drops, whether it committed is
unknown until someone looks, so the error goes to the caller.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from ...errors import Unavailable

__all__ = [
    "AZURE_SQL_TRANSIENT",
    "RetryPolicy",
    "is_transient",
    "sql_server_numbers",
]

T = TypeVar("T")

AZURE_SQL_TRANSIENT = frozenset(
    {
        40613,  # database not currently available (failover, reconfiguration)
        40197,  # the service had an error processing the request
        40501,  # the service is busy
        49918,  # not enough resources to process the request
        49919,  # too many create/update operations in progress
        49920,  # too many operations in progress
        4060,  # cannot open the database (during a failover)
        4221,  # login to a read-secondary failed (replica not ready)
        10928,  # resource limit reached
        10929,  # resource limit: minimum guarantee
        10053,  # transport error: connection aborted by the host
        10054,  # transport error: connection reset by the peer
        10060,  # network error: the connection timed out
        233,  # no process on the other end of the pipe
        64,  # the network name is no longer available
        18456,  # login failed: transient while a failover completes (see README)
    }
)
"""Microsoft's transient fault list for Azure SQL Database."""

# ODBC SQLSTATEs of a communication failure or a timeout (pyodbc ``args[0]``).
_ODBC_STATES = frozenset({"08S01", "08001", "08004", "HYT00", "HYT01"})
# PostgreSQL: connection exceptions (class 08), admin/crash shutdown, cannot
# connect now, and the two kinds of conflict that only a retry resolves.
_PG_STATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01"})
_NUMBER = re.compile(r"\((\d+)\)")


def sql_server_numbers(error: BaseException) -> set[int]:
    """The native error numbers in a pyodbc error (its messages end in ``(40613)``)."""
    numbers: set[int] = set()
    for arg in getattr(error, "args", ()):
        if isinstance(arg, str):
            numbers.update(int(n) for n in _NUMBER.findall(arg))
    return numbers


def _original(error: BaseException) -> BaseException:
    return error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig else error


def is_transient(error: BaseException, dialect: str) -> bool:
    """Whether ``error`` (a DBAPI error, or SQLAlchemy's wrapper of one) is worth a retry."""
    if isinstance(error, Unavailable):
        return True
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    original = _original(error)
    if type(original).__name__ == "IntegrityError":  # a constraint: retrying repeats it
        return False
    if dialect == "mssql":
        state = original.args[0] if original.args else ""
        return bool(sql_server_numbers(original) & AZURE_SQL_TRANSIENT) or state in _ODBC_STATES
    if dialect == "postgresql":
        state = getattr(original, "sqlstate", None) or ""
        if state.startswith("08") or state in _PG_STATES:
            return True
        # Refused or dropped before the server said anything: no SQLSTATE at all.
        return not state and type(original).__name__ == "OperationalError"
    if dialect == "sqlite":
        return "database is locked" in str(original)
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, within a budget of attempts."""

    attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 1.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """The pause before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        return float(rng() * min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def call(
        self,
        fn: Callable[[], T],
        dialect: str,
        *,
        sleep: Callable[[float], Any] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> T:
        """``fn()``, tried again after a transient error; any other error at once."""
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as error:
                if attempt >= self.attempts or not is_transient(error, dialect):
                    raise
            sleep(self.delay(attempt, rng))
            attempt += 1
