"""The SQL schema, as SQLAlchemy Core tables (one source for every dialect).

The seed's entities (User, Conversation, Message, UserSettings) with a
``user_id`` on everything and the message ``status``. Messages carry an
integer ``seq`` so that order is exact even when two rows share a
timestamp; ids on the wire are UUID strings. Times are naive UTC.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

# Microsecond UTC times everywhere; SQL Server's DATETIME would round to 3 ms.
_TIME = sa.DateTime().with_variant(mssql.DATETIME2(), "mssql")  # type: ignore[no-untyped-call]
# NVARCHAR(max) on SQL Server whatever the server version detection says (not NTEXT).
_TEXT = sa.UnicodeText().with_variant(mssql.NVARCHAR(), "mssql")

__all__ = ["conversations", "instances", "messages", "metadata", "user_settings", "users"]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.Unicode(100), nullable=False, unique=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("revoked_at", _TIME, nullable=True),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("title", sa.Unicode(200), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.Column("last_message_at", _TIME, nullable=True),
    sa.Index(None, "user_id", "updated_at"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("seq", sa.Integer(), sa.Identity(), primary_key=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column(
        "conversation_id",
        sa.String(36),
        sa.ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.String(36), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("content", _TEXT, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("is_audio", sa.Boolean(), nullable=False),
    sa.Column("audio_file", sa.Unicode(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("instance_id", sa.String(36), nullable=True),  # who streams it (0002)
    sa.Index(None, "conversation_id", "seq"),
    sa.Index(None, "status"),
)

user_settings = sa.Table(
    "user_settings",
    metadata,
    sa.Column(
        "user_id", sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("selected_model", sa.String(64), nullable=False),
    sa.Column("voice_gender", sa.String(16), nullable=False),
    sa.Column("voice_accent", sa.String(32), nullable=False),
    sa.Column("voice_speed", sa.Float(), nullable=False),
    sa.Column("assistant_personality", _TEXT, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)

instances = sa.Table(  # running server instances and their heartbeats (0002)
    "instances",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("started_at", _TIME, nullable=False),
    sa.Column("heartbeat_at", _TIME, nullable=False),
)
