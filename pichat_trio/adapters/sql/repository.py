"""The ``Repository`` port on SQLAlchemy Core: SQLite, PostgreSQL, Azure SQL.

Every method is blocking and opens one short transaction; callers run them
in trio threads (``services.db.Database``). Every query is scoped by
``user_id``: an object of another user is simply not found.

``SqlRepository`` is one object made of one part per job, each a module:

- ``users``: users and their tokens;
- ``conversations``: a user's conversations;
- ``messages``: messages stored, answers checkpointed and finished, listed;
- ``exchanges``: a ``send_message``'s question and answer row, in batches;
- ``user_settings``: each user's settings.

They share ``store.SqlStore`` (the engine, the write transaction, the reads
tried again) and ``rows`` (rows as models and back).
"""

from __future__ import annotations

from .conversations import ConversationStore
from .exchanges import ExchangeStore
from .messages import MessageStore
from .user_settings import SettingsStore
from .users import UserStore, hash_token

__all__ = ["SqlRepository", "hash_token"]


class SqlRepository(UserStore, ConversationStore, MessageStore, ExchangeStore, SettingsStore):
    """Storage for users, conversations, messages and settings."""
