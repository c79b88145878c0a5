"""Server instances and who runs each answer: crash recovery with several instances.

``instances`` holds one row per running server instance with its last
heartbeat; ``messages.instance_id`` names the instance that streams an
answer. At start-up (and then on every heartbeat) an instance marks
``interrupted`` only the streaming answers whose instance stopped beating.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mssql

_TIME = sa.DateTime().with_variant(mssql.DATETIME2(), "mssql")  # type: ignore[no-untyped-call]

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("heartbeat_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
    )
    op.add_column("messages", sa.Column("instance_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("instance_id")
    op.drop_table("instances")
