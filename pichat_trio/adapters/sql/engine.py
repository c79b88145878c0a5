"""Engines for each supported database, with the options each one needs.

SQLite: WAL journal, foreign keys on, a busy timeout, a pool as large as
the DB thread limiter. PostgreSQL and Azure SQL (``mssql+pyodbc``): a
pre-pinged pool of ``pool_size`` connections and no overflow, a connect
timeout, and for Azure SQL an access token per connection when one is
given (``tokens.py``).

Every engine retries opening a connection after a transient error
(``transient.py``), and turns a transient error that is left into
``errors.Unavailable``, which a client is told as ``unavailable``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ...errors import Unavailable
from ...settings import Settings, SettingsError
from .odbc import check_odbc_driver
from .tokens import AccessTokens, default_credential
from .transient import RetryPolicy, is_transient

__all__ = ["CONNECT_RETRY", "create_engine", "engine_for", "startup_error"]

CONNECT_RETRY = RetryPolicy(attempts=4, base_delay=0.2, max_delay=2.0)
"""Opening a connection: up to four tries within about 1.5 s of pauses."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(
    url: str,
    pool_size: int = 8,
    *,
    connect_timeout: float = 30.0,
    tokens: AccessTokens | None = None,
    connect_retry: RetryPolicy = CONNECT_RETRY,
    setting: str = "DATABASE_URL",
) -> sa.Engine:
    """An engine for ``url``; ``SettingsError`` (naming ``setting``) when it cannot be one."""
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    try:
        engine = _engine(parsed, backend, pool_size, connect_timeout)
    except ImportError as error:
        raise SettingsError(
            f"{setting}: the driver for {parsed.drivername} is not installed ({error})"
        ) from None
    sa.event.listen(engine, "do_connect", _connector(backend, connect_retry, tokens))
    sa.event.listen(engine, "handle_error", _unavailable_hook(backend), retval=True)
    return engine


def _engine(parsed: sa.URL, backend: str, pool_size: int, connect_timeout: float) -> sa.Engine:
    # Errors must not carry bound parameters (message content) into log lines.
    hide: dict[str, Any] = {"hide_parameters": True}
    if backend == "sqlite":
        database = parsed.database or ""
        connect_args = {"check_same_thread": False, "timeout": 10}
        if database in ("", ":memory:"):
            # One in-memory database shared by every thread: one connection.
            engine = sa.create_engine(
                parsed, poolclass=sa.pool.StaticPool, connect_args=connect_args, **hide
            )
        else:
            folder = Path(database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise SettingsError(
                    f"DATABASE_URL: cannot create the folder {str(folder)!r} for the SQLite "
                    f"file: {error.strerror}"
                ) from None
            engine = sa.create_engine(
                parsed, pool_size=pool_size, max_overflow=0, connect_args=connect_args, **hide
            )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    options: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_pre_ping": True,
        **hide,
        "pool_timeout": connect_timeout,
    }
    if backend == "postgresql":
        options["connect_args"] = {"connect_timeout": max(1, math.ceil(connect_timeout))}
    elif backend == "mssql":
        options["fast_executemany"] = True
        # pyodbc's login timeout (SQL_ATTR_LOGIN_TIMEOUT), for a URL without one of its own
        options["connect_args"] = {"timeout": max(1, math.ceil(connect_timeout))}
    return sa.create_engine(parsed, **options)


def _connector(backend: str, policy: RetryPolicy, tokens: AccessTokens | None) -> Any:
    """The ``do_connect`` hook: the DBAPI's connect, retried, with a token when given."""

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        def attempt() -> Any:
            if tokens is not None:  # a fresh token for each try: one may just have expired
                cparams["attrs_before"] = {
                    **cparams.get("attrs_before", {}),
                    **tokens.attrs_before(),
                }
            return dialect.connect(*cargs, **cparams)

        return policy.call(attempt, backend)

    return connect


def _unavailable_hook(backend: str) -> Any:
    """A ``handle_error`` hook: a transient error (after its retries) becomes ``Unavailable``.

    The pre-ping's own failures are left to SQLAlchemy, which reconnects.
    """

    def handle(context: sa.engine.ExceptionContext) -> BaseException | None:
        if context.is_pre_ping:
            return None
        if context.is_disconnect or is_transient(context.original_exception, backend):
            unavailable = Unavailable("the database is not answering; try again shortly")
            unavailable.__cause__ = context.sqlalchemy_exception or context.original_exception
            return unavailable
        return None

    return handle


def engine_for(settings: Settings, pool_size: int | None = None) -> sa.Engine:
    """The engine the settings describe: driver checked, sign-in and timeouts applied."""
    url = sa.make_url(settings.database_url)
    setting = settings.database_setting
    tokens = None
    if url.get_backend_name() == "mssql":
        check_odbc_driver(url, "DB_DRIVER" if setting == "DB_HOST" else setting)
        if settings.db_auth == "default":
            try:
                credential = default_credential(settings.db_client_id)
            except ImportError:
                raise SettingsError(
                    "DB_AUTH=default needs azure-identity: pip install 'pichat-trio[azure-sql]'"
                ) from None
            tokens = AccessTokens(credential)
    return create_engine(
        settings.database_url,
        settings.db_pool_size if pool_size is None else pool_size,
        connect_timeout=settings.db_connect_timeout,
        tokens=tokens,
        setting=setting,
    )


def startup_error(error: BaseException, setting: str) -> SettingsError:
    """One line for a database that cannot be used at start-up, naming ``setting``."""
    cause: BaseException = error
    while isinstance(cause, Unavailable) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, sa.exc.DBAPIError) and cause.orig is not None:
        cause = cause.orig
    args: tuple[Any, ...] = getattr(cause, "args", ())
    message = args[1] if len(args) == 2 and isinstance(args[1], str) else str(cause)  # pyodbc
    text = message.strip().splitlines()
    reason = text[0].strip() if text else type(cause).__name__
    return SettingsError(f"{setting}: cannot use the database: {reason}")
