"""What every part of the SQL repository shares: the engine, the write
transaction, the reads tried again, and the statements of more than one part.

``repository.SqlRepository`` is made of the parts (``users``,
``conversations``, ``messages``, ``exchanges``, ``user_settings``), each a
``SqlStore``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa

from ...models import Settings
from .dialects import max_parameters
from .tables import conversations, messages
from .transient import RetryPolicy

__all__ = ["INSERT_MESSAGE", "OWNED", "READ_RETRY", "TOUCH", "SqlStore", "read"]

# Statements of the per-message path, built once with bound parameters: building
# a statement and its cache key on every call cost more than SQLite's own work.
OWNED = sa.select(conversations).where(
    conversations.c.id == sa.bindparam("b_conversation"),
    conversations.c.user_id == sa.bindparam("b_user"),
)
TOUCH = (
    conversations.update()
    .where(
        conversations.c.id == sa.bindparam("b_conversation"),
        conversations.c.user_id == sa.bindparam("b_user"),
    )
    .values(updated_at=sa.bindparam("b_now"), last_message_at=sa.bindparam("b_now"))
)
INSERT_MESSAGE = messages.insert()

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SqlStore")

READ_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.5)
"""A read that meets a transient fault (a dropped connection, a failover) is tried
again: it changes nothing, so trying again is safe. Writes are not (``transient.py``)."""


def read(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Make ``method``, a read, be tried again after a transient fault (``READ_RETRY``)."""

    @functools.wraps(method)
    def reading(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return READ_RETRY.call(lambda: method(self, *args, **kwargs), self.engine.dialect.name)

    return reading


class SqlStore:
    """The engine and the write transaction of one repository."""

    def __init__(self, engine: sa.Engine, default_settings: Settings) -> None:
        self.engine = engine
        self._default_settings = default_settings
        self.max_parameters = max_parameters(engine.dialect.name)
        """Values of a list in one statement (``dialects.py``)."""
        self.instance_id: str | None = None
        """The server instance that streams the answers started here (``instances.py``)."""
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction; on SQLite, one at a time in this process.

        SQLite has one writer. A second writer waiting in SQLite's busy
        handler sleeps 1, 2, 5, 10 ms and more between tries, so while the
        answers' final writes, the new messages and the checkpoint meet, a
        transaction started several milliseconds after the one before it
        had committed. Waiting on a lock here, it starts at that commit.
        """
        with self._writer, self.engine.begin() as connection:
            yield connection

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def _owned(self, connection: sa.Connection, user_id: str, conversation_id: str) -> Any:
        return connection.execute(
            OWNED, {"b_conversation": conversation_id, "b_user": user_id}
        ).first()
