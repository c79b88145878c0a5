"""Start-up as a user meets it: a bad database setting is one line and exit 2, and an
empty database (PostgreSQL included) is brought up by ``pichat serve`` itself, also
when two servers start on it at once."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import trio
from cli_support import TOKEN, environment, pichat
from support import run_server_process

from pichat_trio.client import open_client


def _one_line(result: object, *names: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)  # type: ignore[attr-defined]
    assert result.stdout == ""  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, result.stderr  # type: ignore[attr-defined]
    assert lines[0].startswith("pichat: configuration error: "), lines[0]
    for name in names:
        assert name in lines[0], lines[0]
    assert "Traceback" not in lines[0]
    return str(lines[0])


_AZURE = {"DB_HOST": "pichat.database.windows.net", "DB_USER": "app", "DB_PASSWORD": "pw"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DATABASE_URL": "nonsense://"}, ["DATABASE_URL", "nonsense"]),
        ({"DATABASE_URL": "not a url at all"}, ["DATABASE_URL", "not a database URL"]),
        ({"DATABASE_URL": "oracle://u@db/x"}, ["DATABASE_URL", "oracle"]),
        ({"DATABASE_URL": "postgresql+nosuchdriver://u@db/x"}, ["DATABASE_URL", "driver"]),
        ({"DATABASE_URL": "postgresql+psycopg2://u@db/x"}, ["DATABASE_URL", "psycopg2"]),
        ({"DATABASE_URL": "sqlite:////proc/no/such/folder/x.db"}, ["DATABASE_URL", "/proc/no"]),
        ({"DB_AUTH": "kerberos"}, ["DB_AUTH"]),
        ({"DB_POOL_SIZE": "4", "DB_THREADS": "5"}, ["DB_THREADS", "DB_POOL_SIZE"]),
        ({"DB_TIMEOUT": "soon"}, ["DB_TIMEOUT"]),
        ({"DATABASE_URL": None, "DB_HOST": "db.example", "DB_USER": "u"}, ["DB_PASSWORD"]),
    ],
)
def test_a_bad_database_setting_is_one_line_and_exit_2(
    tmp_path: Path, env: dict[str, str | None], names: list[str]
) -> None:
    _one_line(pichat(tmp_path, "serve", env=env), *names)


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("shopping list: milk, bread, and a great many other things\n" * 10)
    line = _one_line(pichat(tmp_path, "serve", env={"DATABASE_URL": f"sqlite:///{text}"}))
    assert "DATABASE_URL" in line and "not a database" in line
    assert text.read_text().startswith("shopping list")


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/pichat"
    line = _one_line(pichat(tmp_path, "serve", env={"DATABASE_URL": url}), "DATABASE_URL")
    assert "Connection refused" in line


def test_users_and_migrate_say_the_same_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/pichat"
    for command in (["migrate"], ["users", "list"], ["users", "add", "ann"]):
        _one_line(pichat(tmp_path, *command, env={"DATABASE_URL": url}), "DATABASE_URL")


def test_azure_sql_without_its_odbc_driver_names_the_package(tmp_path: Path) -> None:
    env: dict[str, str | None] = {"DATABASE_URL": None, **_AZURE}
    line = _one_line(pichat(tmp_path, "serve", env=env), "DB_DRIVER", "msodbcsql18")
    assert "ODBC Driver 18 for SQL Server" in line


def test_pyodbc_without_libodbc_names_the_package(tmp_path: Path) -> None:
    # pyodbc's own failure when libodbc.so.2 is missing, from a module that stands in for it.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "pyodbc.py").write_text(
        "raise ImportError('libodbc.so.2: cannot open shared object file: "
        "No such file or directory')\n"
    )
    env: dict[str, str | None] = {
        "DATABASE_URL": None,
        **_AZURE,
        "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
    }
    _one_line(pichat(tmp_path, "serve", env=env), "DB_DRIVER", "unixodbc", "libodbc2")


def _freetds_url(port: int) -> str:
    odbc = f"Driver=FreeTDS;Server=127.0.0.1;Port={port};TDS_Version=7.4;UID=app;PWD=pw;"
    return str(sa.URL.create("mssql+pyodbc", query={"odbc_connect": odbc}))


def _needs_freetds() -> None:
    pyodbc = pytest.importorskip("pyodbc")
    if "FreeTDS" not in pyodbc.drivers():
        pytest.skip("FreeTDS is not installed (apt-get install unixodbc tdsodbc)")


def test_sql_server_on_a_closed_port_fails_in_one_line(tmp_path: Path) -> None:
    _needs_freetds()
    env = {"DATABASE_URL": _freetds_url(_closed_port()), "DB_CONNECT_TIMEOUT": "2"}
    line = _one_line(pichat(tmp_path, "serve", env=env), "DATABASE_URL")
    assert "Unable to connect" in line


def test_sql_server_that_never_answers_fails_at_the_login_timeout(tmp_path: Path) -> None:
    _needs_freetds()
    with socket.socket() as silent:  # accepts (the kernel does) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        env = {"DATABASE_URL": _freetds_url(silent.getsockname()[1]), "DB_CONNECT_TIMEOUT": "1"}
        line = _one_line(pichat(tmp_path, "serve", env=env), "DATABASE_URL")
    assert "Timeout expired" in line


# ------------------------------------------------------- a fresh PostgreSQL database


@asynccontextmanager
async def serving(folder: Path, env: dict[str, str | None]) -> AsyncIterator[str]:
    """``pichat serve`` in ``folder`` on a free port; its ws:// URL."""
    argv = [sys.executable, "-m", "pichat_trio", "serve", "--host", "127.0.0.1", "--port", "0"]
    async with run_server_process(argv, environment(folder, env), folder) as server:
        yield server.url.replace("http", "ws", 1)


async def _works(url: str) -> None:
    """A WebSocket request that needs the database, answered."""
    async with open_client(url, TOKEN) as client:
        created = await client.call("create_conversation", {"title": "first"})
        assert created["action"] == "conversation_created", created
        listed = await client.call("get_conversations", {})
        assert [c["title"] for c in listed["payload"]["conversations"]] == ["first"]


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


async def test_serve_brings_up_an_empty_postgresql_database(
    tmp_path: Path, fresh_postgres: str
) -> None:
    assert _tables(fresh_postgres) == set()
    async with serving(tmp_path, {"DATABASE_URL": fresh_postgres}) as url:
        await _works(url)
    assert {"users", "conversations", "messages", "user_settings"} <= _tables(fresh_postgres)


async def test_two_servers_starting_at_once_on_an_empty_database_both_serve(
    tmp_path: Path, fresh_postgres: str
) -> None:
    urls: list[str] = []
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()

    async def one(folder: Path, up: trio.Event, stop: trio.Event) -> None:
        async with serving(folder, {"DATABASE_URL": fresh_postgres}) as url:
            urls.append(url)
            up.set()
            await stop.wait()

    stop = trio.Event()
    ups = [trio.Event(), trio.Event()]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, first, ups[0], stop)
        nursery.start_soon(one, second, ups[1], stop)
        for up in ups:
            await up.wait()
        for url in urls:
            async with open_client(url, TOKEN) as client:
                pong = await client.call("ping", {})
                assert pong["action"] == "pong", pong
                listed = await client.call("get_conversations", {})
                assert listed["action"] == "conversations_list", listed
        stop.set()
    assert len(urls) == 2
