"""Engines for each supported database, with the options each one needs.

SQLite: WAL journal, foreign keys on, a busy timeout, a pool as large as
the DB thread limiter. PostgreSQL and Azure SQL (``mssql+pyodbc``): a
pre-pinged pool of ``pool_size`` connections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = ["create_engine"]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str, pool_size: int = 8) -> sa.Engine:
    """An engine for ``url``; raises ``sqlalchemy.exc.ArgumentError`` for a bad URL."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        connect_args = {"check_same_thread": False, "timeout": 10}
        if database in ("", ":memory:"):
            # One in-memory database shared by every thread: one connection.
            engine = sa.create_engine(
                parsed, poolclass=sa.pool.StaticPool, connect_args=connect_args
            )
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                parsed, pool_size=pool_size, max_overflow=0, connect_args=connect_args
            )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0, "pool_pre_ping": True}
    if parsed.get_backend_name() == "mssql":
        options["fast_executemany"] = True
    return sa.create_engine(parsed, **options)
