"""What a production database needs: the Azure SQL URL and sign-in, the transient
fault policy, batches within each dialect's parameter limit, a real upsert, keyset
paging that uses the indexes, and the migration lock of each dialect."""

from __future__ import annotations

import sqlite3
import struct
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from pichat_trio.adapters.sql import dialects, migrate, tables
from pichat_trio.adapters.sql import engine as engine_module
from pichat_trio.adapters.sql.odbc import parse_odbc
from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.adapters.sql.tokens import SQL_COPT_SS_ACCESS_TOKEN, AccessTokens
from pichat_trio.adapters.sql.transient import AZURE_SQL_TRANSIENT, RetryPolicy, is_transient
from pichat_trio.errors import Unavailable
from pichat_trio.models import Settings, User, VoiceSettings
from pichat_trio.settings import load_settings

AZURE = {"DB_HOST": "pichat-sql.database.windows.net", "DB_USER": "pichat_app"}


def _odbc_handed_to_pyodbc(environ: dict[str, str]) -> str:
    url = sa.make_url(load_settings(environ, env_file=None).database_url)
    args, kwargs = url.get_dialect()().create_connect_args(url)
    assert kwargs == {}
    [odbc] = args
    assert isinstance(odbc, str)
    return odbc


# ------------------------------------------------------------- URL and sign-in


@pytest.mark.parametrize("password", ["p;Database=master", "a{b}c;d", "}{;=", " spaced "])
def test_a_password_with_odbc_syntax_arrives_whole(password: str) -> None:
    odbc = _odbc_handed_to_pyodbc({**AZURE, "DB_PASSWORD": password})
    parts = parse_odbc(odbc)
    assert parts["Pwd"] == password.strip()  # settings strip values, as for every variable
    assert parts["Database"] == "pichat"  # not the password's
    assert list(parts) == [
        "Driver",
        "Server",
        "Database",
        "Uid",
        "Pwd",
        "Encrypt",
        "TrustServerCertificate",
        "Connection Timeout",
    ]
    assert parts["Encrypt"] == "yes" and parts["TrustServerCertificate"] == "no"


def test_the_escaped_string_is_what_odbc_reads() -> None:
    odbc = _odbc_handed_to_pyodbc({**AZURE, "DB_PASSWORD": "x}y;z"})
    assert "Pwd={x}}y;z};" in odbc
    assert odbc.startswith("Driver={ODBC Driver 18 for SQL Server};Server=tcp:")


def test_the_login_timeout_comes_from_db_connect_timeout() -> None:
    odbc = _odbc_handed_to_pyodbc({**AZURE, "DB_PASSWORD": "pw", "DB_CONNECT_TIMEOUT": "12"})
    assert parse_odbc(odbc)["Connection Timeout"] == "12"


def test_managed_identity_has_no_password() -> None:
    system = parse_odbc(_odbc_handed_to_pyodbc({**AZURE, "DB_AUTH": "managed_identity"}))
    assert system["Authentication"] == "ActiveDirectoryMsi"
    assert "Pwd" not in system and "Uid" not in system
    user_assigned = parse_odbc(
        _odbc_handed_to_pyodbc(
            {**AZURE, "DB_AUTH": "managed_identity", "DB_CLIENT_ID": "1b4e-client"}
        )
    )
    assert user_assigned["Uid"] == "1b4e-client"


def test_default_credential_leaves_sign_in_to_the_token() -> None:
    parts = parse_odbc(_odbc_handed_to_pyodbc({**AZURE, "DB_AUTH": "default"}))
    assert not {"Uid", "Pwd", "Authentication"} & set(parts)


class _Token:
    def __init__(self, token: str, expires_on: float) -> None:
        self.token = token
        self.expires_on = expires_on


class FakeCredential:
    """Stands in for azure-identity's DefaultAzureCredential: numbered tokens, 1 h each."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str) -> _Token:
        self.scopes.append(scopes)
        return _Token(f"token-{len(self.scopes)}", self.clock() + 3600)


def _unpacked(attrs: dict[int, bytes]) -> str:
    packed = attrs[SQL_COPT_SS_ACCESS_TOKEN]
    (length,) = struct.unpack_from("<I", packed)
    assert length == len(packed) - 4
    return packed[4:].decode("utf-16-le")


def test_the_access_token_is_packed_for_the_driver_and_refreshed_before_it_expires() -> None:
    now = [1_000_000.0]
    credential = FakeCredential(lambda: now[0])
    tokens = AccessTokens(credential, clock=lambda: now[0])

    assert _unpacked(tokens.attrs_before()) == "token-1"
    assert credential.scopes == [("https://database.windows.net/.default",)]
    now[0] += 3000  # 10 minutes left: still good
    assert _unpacked(tokens.attrs_before()) == "token-1"
    now[0] += 400  # under 5 minutes left: a new one
    assert _unpacked(tokens.attrs_before()) == "token-2"
    assert len(credential.scopes) == 2


class _FakeDialect:
    """What the connect hook calls: ``dialect.connect(*cargs, **cparams)``, here failing
    with a pyodbc-shaped error a given number of times first."""

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls: list[dict[str, Any]] = []

    def connect(self, *cargs: Any, **cparams: Any) -> str:
        self.calls.append(dict(cparams))
        if self.failures:
            raise self.failures.pop(0)
        return "connection"


class OperationalError(Exception):
    """pyodbc's: ``args`` are the SQLSTATE and the driver's message, ending in the number."""


class IntegrityError(Exception):
    pass


def _sql_server_error(number: int, state: str = "42000") -> OperationalError:
    return OperationalError(
        state, f"[{state}] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]Failed. ({number})"
    )


def _no_sleep(_seconds: float) -> None:
    pass


def test_connecting_retries_transient_faults_with_a_fresh_token_each_time() -> None:
    now = [0.0]
    tokens = AccessTokens(FakeCredential(lambda: now[0]), clock=lambda: now[0])
    dialect = _FakeDialect([_sql_server_error(40613), _sql_server_error(10928)])
    policy = RetryPolicy(attempts=4, base_delay=0.0)
    connect = engine_module._connector("mssql", policy, tokens)

    assert connect(dialect, None, (), {"attrs_before": {1: b"x"}}) == "connection"
    assert len(dialect.calls) == 3
    for call in dialect.calls:
        assert call["attrs_before"][1] == b"x"
        assert _unpacked(call["attrs_before"]).startswith("token-")


@pytest.mark.parametrize("number", sorted(AZURE_SQL_TRANSIENT))
def test_each_azure_transient_number_is_retried(number: int) -> None:
    errors = [_sql_server_error(number), _sql_server_error(number)]
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "done"

    pauses: list[float] = []
    policy = RetryPolicy(attempts=4, base_delay=0.1, max_delay=1.0)
    assert policy.call(work, "mssql", sleep=pauses.append, rng=lambda: 1.0) == "done"
    assert len(calls) == 3
    assert pauses == [0.1, 0.2]  # exponential; the jitter (rng) is at its top here


def test_the_pauses_are_jittered_and_capped() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    assert policy.delay(1, rng=lambda: 0.5) == pytest.approx(0.05)
    assert policy.delay(8, rng=lambda: 0.999) == pytest.approx(0.999)


def test_a_constraint_violation_is_not_retried() -> None:
    calls: list[int] = []

    def insert() -> None:
        calls.append(1)
        raise IntegrityError(
            "23000", "[23000] Violation of PRIMARY KEY constraint 'pk_users'. (2627)"
        )

    with pytest.raises(IntegrityError):
        RetryPolicy(attempts=5).call(insert, "mssql", sleep=_no_sleep)
    assert calls == [1]


def test_an_error_that_is_not_transient_is_not_retried() -> None:
    assert not is_transient(_sql_server_error(208), "mssql")  # invalid object name
    assert not is_transient(_sql_server_error(18456 + 1), "mssql")
    assert is_transient(_sql_server_error(0, state="08S01"), "mssql")  # link failure
    assert is_transient(psycopg.errors.AdminShutdown(), "postgresql")
    assert is_transient(psycopg.OperationalError("connection refused"), "postgresql")
    assert not is_transient(psycopg.errors.UniqueViolation(), "postgresql")
    assert not is_transient(psycopg.errors.UndefinedTable(), "postgresql")


def test_after_its_retries_a_transient_fault_is_raised() -> None:
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        raise _sql_server_error(40501)

    with pytest.raises(OperationalError):
        RetryPolicy(attempts=3).call(work, "mssql", sleep=_no_sleep)
    assert calls == [1, 1, 1]


def _failing_reads(repo: SqlRepository, error: Exception, times: int) -> list[str]:
    """Make the next ``times`` SELECTs fail in the driver with ``error``; the statements
    tried are recorded."""
    tried: list[str] = []
    left = [times]

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            tried.append(statement)
            if left[0] > 0:
                left[0] -= 1
                raise error

    sa.event.listen(repo.engine, "before_cursor_execute", before)
    return tried


def test_a_read_is_retried_after_a_transient_fault(repo: SqlRepository, alice: User) -> None:
    if repo.engine.dialect.name != "sqlite":
        pytest.skip("the fault is SQLite's own error")
    tried = _failing_reads(repo, sqlite3.OperationalError("database is locked"), 2)
    assert repo.get_settings(alice.id) is not None
    assert len(tried) == 3


def test_a_read_that_keeps_failing_is_unavailable(repo: SqlRepository, alice: User) -> None:
    if repo.engine.dialect.name != "sqlite":
        pytest.skip("the fault is SQLite's own error")
    tried = _failing_reads(repo, sqlite3.OperationalError("database is locked"), 10)
    with pytest.raises(Unavailable):
        repo.get_conversation(alice.id, "any")
    assert len(tried) == 3


def test_a_failed_write_is_not_retried(repo: SqlRepository, alice: User) -> None:
    tried: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO CONVERSATIONS"):
            tried.append(statement)
            raise sqlite3.OperationalError("database is locked")

    sa.event.listen(repo.engine, "before_cursor_execute", before)
    with pytest.raises(Exception):  # noqa: B017
        repo.create_conversation(alice.id, "once")
    assert len(tried) == 1


# ----------------------------------------------------------- batches and upserts


def _parameter_counts(repo: SqlRepository) -> list[int]:
    counts: list[int] = []

    def before(_conn: Any, _cursor: Any, _statement: str, parameters: Any, *_args: Any) -> None:
        rows = parameters if isinstance(parameters, list) else [parameters]
        counts.append(max(len(row) for row in rows) if rows else 0)

    sa.event.listen(repo.engine, "before_cursor_execute", before)
    return counts


def test_users_add_5000_names_in_one_transaction(repo: SqlRepository) -> None:
    names = [f"user-{n:05}" for n in range(5000)]
    created = repo.add_users(names)
    assert [user.name for user, _ in created] == names
    assert [user.name for user in repo.list_users()] == names
    with pytest.raises(ValueError, match="user-04999"):
        repo.add_users(["fresh", "user-04999"])
    assert len(repo.list_users()) == 5000  # "fresh" was not added either


def test_on_sql_server_no_statement_carries_more_than_2100_parameters(
    repo: SqlRepository,
) -> None:
    assert dialects.max_parameters("mssql") <= 2100
    repo.max_parameters = dialects.max_parameters("mssql")  # SQL Server's batches, here
    counts = _parameter_counts(repo)
    repo.add_users([f"u{n}" for n in range(5000)])
    assert counts and max(counts) <= 2100
    assert sum(1 for c in counts if c >= 2000) >= 2  # the name check went in batches


def test_the_sql_server_upsert_is_one_merge() -> None:
    statement = dialects.settings_upsert("mssql", "u1", {"selected_model": "gpt-4"})
    sql = str(statement.compile(dialect=mssql.dialect()))
    assert sql.startswith("MERGE user_settings WITH (HOLDLOCK)")
    assert "WHEN MATCHED THEN UPDATE" in sql and "WHEN NOT MATCHED THEN INSERT" in sql


def test_first_settings_saves_at_the_same_moment_all_succeed(
    repo: SqlRepository, alice: User
) -> None:
    savers = 8
    barrier = threading.Barrier(savers)
    errors: list[BaseException] = []

    def save(n: int) -> None:
        settings = Settings(f"model-{n}", VoiceSettings(speed=1.0), f"personality {n}")
        barrier.wait(10)
        try:
            repo.save_settings(alice.id, settings)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(savers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    saved = repo.get_settings(alice.id)
    assert saved.selected_model in {f"model-{n}" for n in range(savers)}
    assert saved.assistant_personality == f"personality {saved.selected_model[6:]}"


# ------------------------------------------------------------------ keyset paging


def _plan(repo: SqlRepository, call: Callable[[], object]) -> str:
    """EXPLAIN of the last SELECT that ``call`` ran, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        seen.append((statement, parameters))

    sa.event.listen(repo.engine, "before_cursor_execute", before)
    try:
        call()
    finally:
        sa.event.remove(repo.engine, "before_cursor_execute", before)
    statement, parameters = seen[-1]
    with repo.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        with raw.cursor() as cursor:
            cursor.execute("EXPLAIN " + statement, parameters)
            return "\n".join(row[0] for row in cursor.fetchall())


def test_paging_uses_the_indexes_on_postgresql(repo: SqlRepository, alice: User, bob: User) -> None:
    if repo.engine.dialect.name != "postgresql":
        pytest.skip("EXPLAIN is checked on PostgreSQL")
    conversation = repo.create_conversation(alice.id, "long")
    start = datetime(2026, 1, 1)
    with repo.engine.begin() as connection:
        others = [
            {
                "id": f"c{n:05}",
                "user_id": user,
                "title": "t",
                "created_at": start + timedelta(seconds=n),
                "updated_at": start + timedelta(seconds=n),
            }
            for n in range(4000)
            for user in [alice.id if n % 4 == 0 else bob.id]
        ]
        connection.execute(tables.conversations.insert(), others)
        connection.execute(  # other conversations' messages: 20,000 of them
            tables.messages.insert(),
            [
                {
                    "id": f"m{n:06}",
                    "conversation_id": f"c{n % 4000:05}",
                    "user_id": bob.id,
                    "role": "user",
                    "content": "x",
                    "created_at": start,
                    "is_audio": False,
                    "status": "complete",
                }
                for n in range(20000)
            ],
        )
    for n in range(300):
        repo.add_message(alice.id, conversation.id, "user", f"m{n}", "complete")
    middle = repo.list_messages(alice.id, conversation.id, 200, None)
    assert middle is not None
    anchor = middle[0][100].id
    with repo.engine.begin() as connection:
        connection.execute(sa.text("ANALYZE"))

    messages_plan = _plan(repo, lambda: repo.list_messages(alice.id, conversation.id, 50, anchor))
    assert "ix_messages_conversation_id_seq" in messages_plan, messages_plan
    assert "Seq Scan" not in messages_plan, messages_plan
    before = conversation.updated_at
    conversations_plan = _plan(repo, lambda: repo.list_conversations(alice.id, 20, before))
    assert "ix_conversations_user_id_updated_at" in conversations_plan, conversations_plan
    assert "Seq Scan" not in conversations_plan, conversations_plan


# ------------------------------------------------------------------- migrations


def test_each_dialect_takes_its_own_migration_lock() -> None:
    postgres = migrate.lock_statement("postgresql")
    sql_server = migrate.lock_statement("mssql")
    assert postgres is not None and "pg_advisory_xact_lock" in str(postgres)
    assert sql_server is not None
    text = str(sql_server.compile(dialect=mssql.dialect()))
    assert "sp_getapplock" in text and "@LockOwner = 'Transaction'" in text
    assert "THROW" in text  # a lock not granted stops the migration
    assert migrate.lock_statement("sqlite") is None  # a file lock instead
