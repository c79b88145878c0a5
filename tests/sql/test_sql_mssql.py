"""Azure SQL (SQL Server) without a server: DDL, migration SQL, queries, driver, URL."""

from __future__ import annotations

import importlib
import io
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import mssql
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.schema import CreateTable

from pichat_trio.adapters.sql import dialects, migrate, tables
from pichat_trio.adapters.sql.engine import create_engine
from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.models import FinishRequest, Settings, VoiceSettings
from pichat_trio.settings import SettingsError, load_settings

TIME_COLUMNS = {
    "users": ["created_at", "revoked_at"],
    "conversations": ["created_at", "updated_at", "last_message_at"],
    "messages": ["created_at"],
    "user_settings": ["updated_at"],
    "instances": ["started_at", "heartbeat_at"],
}


def _column_types(ddl: str, table: str) -> dict[str, str]:
    """``{column: "TYPE ..."}`` from the ``CREATE TABLE table (...)`` in ``ddl``, and its
    ``ALTER TABLE table ADD ...``."""
    match = re.search(rf"CREATE TABLE {table} \((.*?)\n\)", ddl, re.S)
    assert match is not None, f"no CREATE TABLE {table} in:\n{ddl}"
    columns = {}
    for raw in match.group(1).strip().splitlines():
        line = raw.strip().rstrip(",").strip()
        if line and not line.startswith("CONSTRAINT"):
            name, _, definition = line.partition(" ")
            columns[name] = definition
    for name, definition in re.findall(rf"ALTER TABLE {table} ADD (\w+) (.*?);", ddl):
        columns[name] = definition  # a column a later migration added
    return columns


def _table_ddl() -> str:
    dialect = mssql.dialect()
    return "\n".join(
        str(CreateTable(table).compile(dialect=dialect)) for table in tables.metadata.sorted_tables
    )


def _offline_migration_sql(**options: str) -> str:
    buffer = io.StringIO()
    config = Config(output_buffer=buffer)
    config.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    if "url" in options:
        config.set_main_option("sqlalchemy.url", options["url"])
    if "dialect_name" in options:
        config.attributes["dialect_name"] = options["dialect_name"]
    command.upgrade(config, "head", sql=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def migration_sql() -> str:
    return _offline_migration_sql(dialect_name="mssql")


def _assert_sql_server_types(ddl: str) -> None:
    for table, time_columns in TIME_COLUMNS.items():
        columns = _column_types(ddl, table)
        for column in time_columns:
            assert columns[column].startswith("DATETIME2 "), (table, column, columns[column])
    messages = _column_types(ddl, "messages")
    assert messages["content"] == "NVARCHAR(max) NOT NULL"
    assert messages["seq"].startswith("INTEGER NOT NULL IDENTITY")
    assert messages["is_audio"] == "BIT NOT NULL"
    assert _column_types(ddl, "user_settings")["assistant_personality"] == "NVARCHAR(max) NOT NULL"
    assert _column_types(ddl, "users")["name"] == "NVARCHAR(100) NOT NULL"
    assert _column_types(ddl, "conversations")["title"] == "NVARCHAR(200) NOT NULL"
    assert "NTEXT" not in ddl
    assert not re.search(r"\bDATETIME\b", ddl)


def test_table_ddl_uses_sql_server_types() -> None:
    _assert_sql_server_types(_table_ddl())


def test_offline_migration_uses_sql_server_types(migration_sql: str) -> None:
    _assert_sql_server_types(migration_sql)
    assert re.search(r"\bGO\b", migration_sql)
    head = migrate.head_revision()
    assert f"version_num='{head}' WHERE" in migration_sql  # the last step reaches head
    for name in (
        "ix_conversations_user_id_updated_at",
        "ix_messages_conversation_id_seq",
        "ix_messages_status",
        "fk_messages_conversation_id_conversations",
        "uq_users_token_hash",
    ):
        assert name in migration_sql


def test_offline_migration_matches_the_tables(migration_sql: str) -> None:
    table_ddl = _table_ddl()
    for table in tables.metadata.tables:
        assert _column_types(migration_sql, table) == _column_types(table_ddl, table)


def test_offline_migration_from_a_url() -> None:
    sql = _offline_migration_sql(url="mssql+pyodbc://")
    assert _column_types(sql, "messages")["content"] == "NVARCHAR(max) NOT NULL"


def _captured_statements(tmp_path: Path) -> list[tuple[Any, bool]]:
    """Every statement the repository runs through a full workload, as SQL expressions."""
    engine = create_engine(f"sqlite:///{tmp_path / 'capture.db'}", pool_size=1)
    migrate.upgrade(engine)
    captured: list[tuple[Any, bool]] = []

    def on_execute(
        conn: Any, clauseelement: Any, multiparams: Any, params: Any, execution_options: Any
    ) -> None:
        # Parameters that travel apart from a statement (a batch's rows, the bound
        # values of a prebuilt statement) compile as placeholders.
        bound = multiparams[0] if multiparams else params
        if isinstance(clauseelement, SqliteInsert):  # SQLite's upsert; SQL Server has its own
            clauseelement = dialects.settings_upsert("mssql", "u1", {"selected_model": "m"})
            bound = {}
        if bound and isinstance(clauseelement, sa.Insert):  # as execute compiles it
            clauseelement = clauseelement.values({key: sa.bindparam(key) for key in bound})
        captured.append((clauseelement, not bound))

    sa.event.listen(engine, "before_execute", on_execute)
    defaults = Settings("gpt-4", VoiceSettings(), "helpful")
    repo = SqlRepository(engine, defaults)
    try:
        repo.ping()
        [(user, token)] = repo.add_users(["alice"])
        repo.user_for_token(token)
        repo.ensure_user("alice", "another-token-0123456789")
        repo.list_users()
        conversation = repo.create_conversation(user.id, "chat")
        repo.get_conversation(user.id, conversation.id)
        repo.rename_conversation(user.id, conversation.id, "renamed")
        added = repo.add_message(user.id, conversation.id, "assistant", "", "streaming")
        assert added is not None
        repo.checkpoint_messages([(user.id, added[0].id, "partial")])
        repo.finish_messages([FinishRequest(user.id, added[0].id, "done", "complete")])
        repo.list_conversations(user.id, 20, conversation.updated_at)
        repo.list_messages(user.id, conversation.id, 20, added[0].id)
        repo.interrupt_streaming()
        repo.save_settings(user.id, defaults)
        repo.get_settings(user.id)
        repo.delete_conversation(user.id, conversation.id)
        repo.revoke_user("alice")
    finally:
        sa.event.remove(engine, "before_execute", on_execute)
        engine.dispose()
    return captured


def test_repository_queries_compile_for_sql_server(tmp_path: Path) -> None:
    # Values inside a statement are rendered as literals; values that travel
    # apart (an executemany's rows, a prebuilt statement's) stay placeholders.
    dialect = mssql.dialect()
    compiled = [
        str(clause.compile(dialect=dialect, compile_kwargs={"literal_binds": literal}))
        for clause, literal in _captured_statements(tmp_path)
    ]
    text = "\n".join(compiled)

    assert len(compiled) > 25
    assert "LIMIT" not in text
    assert "TOP 21" in text  # list_messages: limit + 1
    assert "TOP 20" in text  # list_conversations
    assert "ORDER BY messages.seq DESC" in text
    assert "ORDER BY conversations.updated_at DESC, conversations.id DESC" in text
    assert "revoked_at IS NULL" in text
    assert "status = 'streaming'" in text
    assert re.search(r"updated_at < '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}'", text)
    assert "INSERT INTO users (id, name, token_hash, created_at" in text
    assert "INSERT INTO messages (" in text
    assert "OUTPUT inserted.seq" in text  # the identity comes back without a second query
    assert "title=N'renamed'" in text  # Unicode columns get N'' literals
    assert "users.name IN (N'alice')" in text
    assert "MERGE user_settings WITH (HOLDLOCK)" in text


def test_pyodbc_is_importable() -> None:
    try:
        pyodbc = importlib.import_module("pyodbc")
    except ImportError as error:  # the wheel links against the system's unixODBC
        pytest.fail(f"pyodbc does not import ({error}); install unixODBC: apt-get install libodbc2")
    assert callable(pyodbc.connect)
    assert pyodbc.version


AZURE = {
    "DB_HOST": "pichat-sql.database.windows.net",
    "DB_USER": "pichat_app",
    "DB_PASSWORD": "S3cret!pass",
}
EXPECTED_ODBC = (
    "Driver={ODBC Driver 18 for SQL Server};"
    "Server=tcp:pichat-sql.database.windows.net,1433;"
    "Database=pichat;Uid=pichat_app;Pwd=S3cret!pass;"
    "Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30;"
)


def test_db_variables_build_an_azure_sql_url() -> None:
    settings = load_settings(dict(AZURE), env_file=None)

    url = sa.make_url(settings.database_url)
    assert url.drivername == "mssql+pyodbc"
    assert url.get_backend_name() == "mssql"
    assert url.query["odbc_connect"] == EXPECTED_ODBC
    args, kwargs = url.get_dialect()().create_connect_args(url)
    assert list(args) == [EXPECTED_ODBC]
    assert kwargs == {}

    engine = create_engine(settings.database_url, pool_size=3)
    try:
        assert engine.dialect.name == "mssql"
        assert engine.dialect.driver == "pyodbc"
        assert engine.dialect.fast_executemany is True  # type: ignore[attr-defined]
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_db_variables_with_port_database_and_driver() -> None:
    environ = dict(
        AZURE, DB_PORT="14330", DB_NAME="chat", DB_DRIVER="ODBC Driver 17 for SQL Server"
    )
    url = sa.make_url(load_settings(environ, env_file=None).database_url)
    odbc = url.query["odbc_connect"]
    assert isinstance(odbc, str)
    assert odbc.startswith("Driver={ODBC Driver 17 for SQL Server};")
    assert "Server=tcp:pichat-sql.database.windows.net,14330;" in odbc
    assert "Database=chat;" in odbc


def test_database_url_wins_over_db_variables() -> None:
    environ = dict(AZURE, DATABASE_URL="postgresql+psycopg://u@db/pichat")
    assert load_settings(environ, env_file=None).database_url == "postgresql+psycopg://u@db/pichat"


@pytest.mark.parametrize("missing", ["DB_USER", "DB_PASSWORD"])
def test_db_host_needs_user_and_password(missing: str) -> None:
    environ = {k: v for k, v in AZURE.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        load_settings(environ, env_file=None)
