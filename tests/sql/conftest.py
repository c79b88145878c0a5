"""Backends for the SQL contract tests: a SQLite file, and PostgreSQL when configured.

PostgreSQL runs when ``PICHAT_TEST_POSTGRES_URL`` names a server, for example
``postgresql+psycopg://postgres@127.0.0.1:5432/test``. Each test gets a fresh
schema (``search_path`` is set through the connection's ``options``), which
is dropped at teardown.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pichat_trio.adapters.sql import migrate
from pichat_trio.adapters.sql.engine import create_engine
from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.models import Settings, User, VoiceSettings

POSTGRES_URL_VARIABLE = "PICHAT_TEST_POSTGRES_URL"

DEFAULT_SETTINGS = Settings(
    selected_model="gpt-4",
    voice_settings=VoiceSettings(gender="female", accent="american", speed=1.0),
    assistant_personality="A helpful assistant.",
)


def _postgres_engine(base_url: str, schema: str) -> sa.Engine:
    url = sa.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return create_engine(url.render_as_string(hide_password=False), pool_size=2)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on an empty database of each backend."""
    if request.param == "sqlite":
        sqlite_engine = create_engine(f"sqlite:///{tmp_path / 'contract.db'}", pool_size=2)
        try:
            yield sqlite_engine
        finally:
            sqlite_engine.dispose()
        return

    base_url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if not base_url:
        pytest.skip(f"set {POSTGRES_URL_VARIABLE} to run against PostgreSQL")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(base_url, poolclass=sa.NullPool)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        pg_engine = _postgres_engine(base_url, schema)
        try:
            with pg_engine.connect() as connection:
                assert connection.execute(sa.text("SELECT current_schema()")).scalar() == schema
            yield pg_engine
        finally:
            pg_engine.dispose()
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def migrated(engine: sa.Engine) -> sa.Engine:
    migrate.upgrade(engine)
    return engine


@pytest.fixture
def default_settings() -> Settings:
    return DEFAULT_SETTINGS


@pytest.fixture
def repo(migrated: sa.Engine, default_settings: Settings) -> SqlRepository:
    return SqlRepository(migrated, default_settings)


@pytest.fixture
def alice(repo: SqlRepository) -> User:
    return repo.ensure_user("alice", "alice-token-0123456789")


@pytest.fixture
def bob(repo: SqlRepository) -> User:
    return repo.ensure_user("bob", "bob-token-0123456789")
