"""The ``pichat`` command as a user runs it: users add/list/revoke, migrate, help, bad config."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_support import TOKEN
from cli_support import pichat as _pichat

from pichat_trio.adapters.sql import migrate
from pichat_trio.adapters.sql.engine import create_engine
from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.models import Settings, VoiceSettings
from pichat_trio.settings import VARIABLES


def _repository(tmp_path: Path) -> SqlRepository:
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}", pool_size=1)
    defaults = Settings("gpt-4", VoiceSettings(), "helpful")
    return SqlRepository(engine, defaults)


def _added(result: subprocess.CompletedProcess[str]) -> list[tuple[str, str]]:
    assert result.returncode == 0, result.stderr
    pairs = []
    for line in result.stdout.splitlines():
        name, token = line.split(" ")
        pairs.append((name, token))
    return pairs


def test_users_add_prints_a_token_per_user_in_order(tmp_path: Path) -> None:
    result = _pichat(tmp_path, "users", "add", "alice", "bob", "Łucja")

    pairs = _added(result)
    assert [name for name, _ in pairs] == ["alice", "bob", "Łucja"]
    tokens = [token for _, token in pairs]
    assert len(set(tokens)) == 3
    assert all(len(token) >= 40 for token in tokens)
    assert TOKEN not in tokens
    assert result.stderr == ""

    repo = _repository(tmp_path)
    try:
        for name, token in pairs:
            user = repo.user_for_token(token)
            assert user is not None
            assert user.name == name
    finally:
        repo.engine.dispose()


def test_users_add_300_names_in_one_call(tmp_path: Path) -> None:
    names = [f"user-{n:03}" for n in range(300)]

    result = _pichat(tmp_path, "users", "add", *names)

    pairs = _added(result)
    assert [name for name, _ in pairs] == names
    assert len({token for _, token in pairs}) == 300
    repo = _repository(tmp_path)
    try:
        users = repo.list_users()
        assert [user.name for user in users] == names
        assert repo.user_for_token(pairs[0][1]) == users[0]
        assert repo.user_for_token(pairs[-1][1]) == users[-1]
    finally:
        repo.engine.dispose()


def test_users_add_existing_name_creates_none_of_the_batch(tmp_path: Path) -> None:
    _added(_pichat(tmp_path, "users", "add", "alice"))
    batch = [f"new-{n:03}" for n in range(150)] + ["alice"] + [f"late-{n}" for n in range(5)]

    result = _pichat(tmp_path, "users", "add", *batch)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == "pichat: user already exists: alice"
    listed = _pichat(tmp_path, "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["alice"]


def test_users_list_and_revoke(tmp_path: Path) -> None:
    pairs = dict(_added(_pichat(tmp_path, "users", "add", "carol", "alice", "bob")))

    listed = _pichat(tmp_path, "users", "list")
    assert listed.returncode == 0, listed.stderr
    # ``default`` is not there: users commands do not create the API_TOKEN user.
    assert listed.stdout.splitlines() == ["alice", "bob", "carol"]

    revoked = _pichat(tmp_path, "users", "revoke", "bob")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.strip() == "revoked bob"

    again = _pichat(tmp_path, "users", "revoke", "bob")
    assert again.returncode == 1
    assert "bob" in again.stderr

    repo = _repository(tmp_path)
    try:
        assert repo.user_for_token(pairs["bob"]) is None
        alice = repo.user_for_token(pairs["alice"])
        assert alice is not None
        assert alice.name == "alice"
        assert [user.name for user in repo.list_users()] == ["alice", "carol"]
    finally:
        repo.engine.dispose()
    listed = _pichat(tmp_path, "users", "list")
    assert listed.stdout.splitlines() == ["alice", "carol"]


def test_migrate_prints_the_revision(tmp_path: Path) -> None:
    result = _pichat(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"database at revision {migrate.head_revision()}"

    again = _pichat(tmp_path, "migrate")
    assert again.returncode == 0, again.stderr
    assert again.stdout == result.stdout
    engine = create_engine(f"sqlite:///{tmp_path / 'cli.db'}", pool_size=1)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_help_names_every_variable(tmp_path: Path) -> None:
    result = _pichat(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    missing = [v.name for v in VARIABLES if v.name not in result.stdout]
    assert missing == []
    for command in ("serve", "migrate", "users"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ENVIRONMENT": "production", "API_TOKEN": None}, "API_TOKEN"),
        ({"SERVER_PORT": "abc"}, "SERVER_PORT"),
    ],
)
def test_serve_with_bad_configuration_exits_2(
    tmp_path: Path, env: dict[str, str | None], variable: str
) -> None:
    result = _pichat(tmp_path, "serve", env=env)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pichat: configuration error: ")
    assert variable in lines[0]
    assert not (tmp_path / "cli.db").exists()


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _pichat(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port))

    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].endswith("cannot serve: [Errno 98] Address already in use")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_users_add_5000_names_in_one_call(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str | None] = {}
    if database == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("fresh_postgres")
    names = [f"u{n:04}" for n in range(5000)]

    pairs = _added(_pichat(tmp_path, "users", "add", *names, env=env))

    assert [name for name, _ in pairs] == names
    listed = _pichat(tmp_path, "users", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == names


@pytest.mark.parametrize("token", ["pässwörd-0123456789abc", "token with spaces 0123456"])
def test_a_token_an_authorization_header_cannot_carry_is_refused_at_start(tmp_path, token):
    result = _pichat(tmp_path, "serve", env={"API_TOKEN": token})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pichat: configuration error: API_TOKEN: use printable ASCII characters only, no spaces"
    ]
