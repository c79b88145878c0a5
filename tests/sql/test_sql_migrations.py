"""Migrations on SQLite and PostgreSQL: to head from empty, idempotent, equal to the tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pichat_trio.adapters.sql import migrate, tables

TABLES = {"users", "conversations", "messages", "user_settings", "instances"}


def _differences(connection: sa.Connection, metadata: sa.MetaData) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


def _is_sqlite_identity_of_seq(diff: Any) -> bool:
    """SQLite has no identity columns, so reflection cannot see ``Identity()`` on seq.

    On SQLite ``messages.seq`` is an ``INTEGER PRIMARY KEY``, the rowid alias,
    which numbers rows by itself (the test below proves it); this one report
    is the only one that is ignored, and on SQLite only.
    """
    if not isinstance(diff, list) or len(diff) != 1:
        return False
    op = diff[0]
    return (
        op[0] == "modify_default"
        and op[2:4] == ("messages", "seq")
        and op[5] is None
        and isinstance(op[6], sa.Identity)
    )


def test_head_revision_is_known() -> None:
    head = migrate.head_revision()
    assert head is not None
    assert head == "0002"


def test_upgrade_from_empty_reaches_head(engine: sa.Engine) -> None:
    assert migrate.current_revision(engine) is None
    assert not set(sa.inspect(engine).get_table_names()) & TABLES

    migrate.upgrade(engine)

    assert migrate.current_revision(engine) == migrate.head_revision()
    assert set(sa.inspect(engine).get_table_names()) == TABLES | {"alembic_version"}


def test_upgrade_again_is_a_no_op(engine: sa.Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            tables.users.insert().values(
                id="u1", name="keep", token_hash="h" * 64, created_at=sa.func.now()
            )
        )

    migrate.upgrade(engine)
    migrate.upgrade(engine)

    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as connection:
        assert connection.execute(sa.select(tables.users.c.name)).scalars().all() == ["keep"]
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        assert versions.scalars().all() == [migrate.head_revision()]


def test_migrated_schema_matches_the_tables(migrated: sa.Engine) -> None:
    with migrated.connect() as connection:
        differences = _differences(connection, tables.metadata)
        if migrated.dialect.name == "sqlite":
            ddl = connection.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = 'messages'")
            ).scalar_one()
            assert "seq INTEGER NOT NULL" in ddl
            assert "PRIMARY KEY (seq)" in ddl
            differences = [d for d in differences if not _is_sqlite_identity_of_seq(d)]
    assert differences == []


def test_schema_comparison_sees_a_difference(migrated: sa.Engine) -> None:
    """The comparison above is not blind: an extra column and index are reported."""
    changed = sa.MetaData(naming_convention=tables.metadata.naming_convention)
    for table in tables.metadata.sorted_tables:
        table.to_metadata(changed)
    users = changed.tables["users"]
    users.append_column(sa.Column("nickname", sa.String(20), nullable=True))
    sa.Index("ix_users_nickname", users.c.nickname)

    with migrated.connect() as connection:
        reported = repr(_differences(connection, changed))
    assert "nickname" in reported
    assert "ix_users_nickname" in reported


def test_seq_numbers_rows_by_itself(migrated: sa.Engine) -> None:
    with migrated.begin() as connection:
        connection.execute(
            tables.users.insert().values(
                id="u1", name="n", token_hash="h" * 64, created_at=sa.func.now()
            )
        )
        connection.execute(
            tables.conversations.insert().values(
                id="c1",
                user_id="u1",
                title="t",
                created_at=sa.func.now(),
                updated_at=sa.func.now(),
            )
        )
        for number in range(3):
            connection.execute(
                tables.messages.insert().values(
                    id=f"m{number}",
                    conversation_id="c1",
                    user_id="u1",
                    role="user",
                    content="x",
                    created_at=sa.func.now(),
                    is_audio=False,
                    status="complete",
                )
            )
        rows = connection.execute(
            sa.select(tables.messages.c.seq, tables.messages.c.id).order_by(tables.messages.c.seq)
        ).all()
    assert [row.id for row in rows] == ["m0", "m1", "m2"]
    seqs = [row.seq for row in rows]
    assert all(isinstance(seq, int) for seq in seqs)
    assert seqs == sorted(set(seqs))


def test_migrations_started_together_on_an_empty_database_all_succeed(
    engine: sa.Engine,
) -> None:
    """The migration lock: without it, these collide (duplicate tables, Alembic's own
    bookkeeping failing, a deadlock on PostgreSQL)."""
    import threading

    from pichat_trio.adapters.sql.engine import create_engine

    url = engine.url.render_as_string(hide_password=False)
    engines = [create_engine(url, pool_size=1) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def migrate_now(each: sa.Engine) -> None:
        barrier.wait(30)
        try:
            migrate.upgrade(each)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=migrate_now, args=(each,)) for each in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    finally:
        for each in engines:
            each.dispose()
    assert errors == []
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
        assert versions.scalars().all() == [migrate.head_revision()]
