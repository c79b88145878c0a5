from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import RunningServer, make_settings, run_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(tmp_path)) as running:
        yield running


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    """A new, empty database on the machine's PostgreSQL server, dropped afterwards."""
    base = os.environ.get("PICHAT_TEST_POSTGRES_URL", "")
    if not base:
        pytest.skip("set PICHAT_TEST_POSTGRES_URL to run against PostgreSQL")
    name = f"pichat_fresh_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield sa.make_url(base).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
