"""Alembic environment: runs on the connection that ``migrate.upgrade`` passes in.

Offline (``alembic upgrade --sql``) it renders the SQL for the dialect named
by the ``dialect_name`` attribute or the ``sqlalchemy.url`` option.
"""

from __future__ import annotations

from alembic import context

from pichat_trio.adapters.sql.tables import metadata

if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        dialect_name=context.config.attributes.get("dialect_name"),
        target_metadata=metadata,
        literal_binds=True,
    )
else:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
