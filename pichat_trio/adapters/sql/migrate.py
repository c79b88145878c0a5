"""Schema migrations with Alembic, run from code (``pichat migrate``, start-up).

Every server brings the schema up when it starts, on every database, so a
container on App Service comes up on an empty database with no manual
step. Several instances may start at once: each takes a lock that only one
can hold, the first migrates, and the others find the schema at head and
do nothing. The lock is the database's own where it has one: PostgreSQL's
``pg_advisory_xact_lock`` and SQL Server's ``sp_getapplock``, both held by
the migration's transaction (DDL is transactional on both, and the lock
goes with the commit or the rollback); for SQLite, an exclusive ``flock``
on a file beside the database, since SQLite's write lock is not held
across Alembic's statements.
"""

from __future__ import annotations

import contextlib
import fcntl
import zlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

__all__ = ["LOCK_NAME", "current_revision", "head_revision", "lock_statement", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")
LOCK_NAME = "pichat-schema-migration"
_PG_KEY = zlib.crc32(LOCK_NAME.encode())  # one 32-bit key; the advisory lock takes a bigint
_LOCK_TIMEOUT_MS = 120_000  # SQL Server waits this long for another instance's migration


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def lock_statement(dialect: str) -> sa.TextClause | None:
    """The statement that takes the migration lock inside a transaction, per dialect."""
    if dialect == "postgresql":
        return sa.text(f"SELECT pg_advisory_xact_lock({_PG_KEY})")
    if dialect == "mssql":
        return sa.text(
            "DECLARE @result int; "
            f"EXEC @result = sp_getapplock @Resource = N'{LOCK_NAME}', @LockMode = 'Exclusive', "
            f"@LockOwner = 'Transaction', @LockTimeout = {_LOCK_TIMEOUT_MS}; "
            "IF @result < 0 THROW 50000, 'the schema migration lock was not granted', 1;"
        )
    return None


@contextlib.contextmanager
def _file_lock(engine: sa.Engine) -> Iterator[None]:
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        yield
        return
    path = Path(database).expanduser()
    with open(path.with_name(path.name + ".migrate-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` under the migration lock; a no-op when it is there."""
    statement = lock_statement(engine.dialect.name)
    with _file_lock(engine), engine.begin() as connection:
        if statement is not None:
            connection.execute(statement)
        command.upgrade(_config(connection), revision)
