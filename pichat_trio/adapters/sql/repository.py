"""The ``Repository`` port on SQLAlchemy Core: SQLite, PostgreSQL, Azure SQL.

Every method is blocking and opens one short transaction; callers run them
in trio threads (``services.db.Database``). Every query is scoped by
``user_id``: an object of another user is simply not found.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec
import sqlalchemy as sa

from ...models import (
    Conversation,
    Exchange,
    ExchangeRequest,
    FinishRequest,
    Message,
    MessageStatus,
    Role,
    Settings,
    Turn,
    User,
    VoiceSettings,
)
from .dialects import batches, max_parameters, settings_upsert
from .tables import conversations, messages, user_settings, users
from .transient import RetryPolicy

__all__ = ["SqlRepository", "hash_token"]


def hash_token(token: str) -> str:
    """Tokens are random 256-bit strings, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _conversation(row: Any) -> Conversation:
    return Conversation(
        id=row.id,
        title=row.title,
        created_at=row.created_at.replace(tzinfo=UTC),
        updated_at=row.updated_at.replace(tzinfo=UTC),
        last_message_at=_utc(row.last_message_at),
    )


def _message(row: Any) -> Message:
    return Message(
        id=row.id,
        conversation_id=row.conversation_id,
        role=row.role,
        content=row.content,
        created_at=row.created_at.replace(tzinfo=UTC),
        is_audio=bool(row.is_audio),
        audio_file=row.audio_file,
        status=row.status,
    )


def _new_message(
    user_id: str,
    conversation_id: str,
    role: Role,
    content: str,
    status: MessageStatus,
    is_audio: bool,
    audio_file: str | None,
    now: datetime,
) -> tuple[Message, dict[str, Any]]:
    """A new message and the row that stores it."""
    message = Message(
        id=str(uuid.uuid4()),
        conversation_id=conversation_id,
        role=role,
        content=content,
        created_at=now.replace(tzinfo=UTC),
        is_audio=is_audio,
        audio_file=audio_file,
        status=status,
    )
    values = msgspec.structs.asdict(message)
    values.update(user_id=user_id, created_at=now)
    return message, values


def _settings(row: Any) -> Settings:
    return Settings(
        selected_model=row.selected_model,
        voice_settings=VoiceSettings(
            gender=row.voice_gender, accent=row.voice_accent, speed=row.voice_speed
        ),
        assistant_personality=row.assistant_personality,
    )


_MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.conversation_id,
    messages.c.role,
    messages.c.content,
    messages.c.created_at,
    messages.c.is_audio,
    messages.c.audio_file,
    messages.c.status,
)


# Statements of the per-message path, built once with bound parameters: building
# a statement and its cache key on every call cost more than SQLite's own work.
_OWNED = sa.select(conversations).where(
    conversations.c.id == sa.bindparam("b_conversation"),
    conversations.c.user_id == sa.bindparam("b_user"),
)
_TOUCH = (
    conversations.update()
    .where(
        conversations.c.id == sa.bindparam("b_conversation"),
        conversations.c.user_id == sa.bindparam("b_user"),
    )
    .values(updated_at=sa.bindparam("b_now"), last_message_at=sa.bindparam("b_now"))
)
_RETITLE = (
    conversations.update()
    .where(
        conversations.c.id == sa.bindparam("b_conversation"),
        conversations.c.title == sa.bindparam("b_old"),
    )
    .values(title=sa.bindparam("b_new"))
)
_INSERT_MESSAGE = messages.insert()
_IDS_PER_QUERY = 500  # bound parameters per IN list: SQL Server takes at most 2,100
_FINISH = (
    messages.update()
    .where(messages.c.id == sa.bindparam("b_id"), messages.c.user_id == sa.bindparam("b_user"))
    .values(content=sa.bindparam("b_content"), status=sa.bindparam("b_status"))
)
_CHECKPOINT = (  # a checkpoint that lands after the answer's final write changes nothing
    messages.update()
    .where(
        messages.c.id == sa.bindparam("b_id"),
        messages.c.user_id == sa.bindparam("b_user"),
        messages.c.status == "streaming",
    )
    .values(content=sa.bindparam("b_content"))
)
_SETTINGS = sa.select(user_settings).where(user_settings.c.user_id == sa.bindparam("b_user"))
_MESSAGES_BY_ID = sa.select(*_MESSAGE_COLUMNS, messages.c.user_id).where(
    messages.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_CONVERSATIONS = sa.select(conversations).where(
    conversations.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
_ANY_MESSAGE = (
    sa.select(messages.c.seq)
    .where(messages.c.conversation_id == conversations.c.id)
    .limit(1)
    .scalar_subquery()
    .label("any_message")
)
_EXCHANGE_CONVERSATIONS = sa.select(conversations, _ANY_MESSAGE).where(
    conversations.c.id.in_(sa.bindparam("b_ids", expanding=True))
)
"""The conversations of a batch of exchanges, each with a message of it if it has
any: a conversation without one needs no history query."""
_SETTINGS_OF = sa.select(user_settings).where(
    user_settings.c.user_id.in_(sa.bindparam("b_users", expanding=True))
)
_HISTORY: dict[int, sa.Select[Any]] = {}


def _history(rows: int) -> sa.Select[Any]:
    """Role, content and status of the newest ``rows`` messages of a conversation,
    newest first (one statement per size)."""
    if rows not in _HISTORY:
        _HISTORY[rows] = (
            sa.select(messages.c.role, messages.c.content, messages.c.status)
            .where(messages.c.conversation_id == sa.bindparam("b_conversation"))
            .order_by(messages.c.seq.desc())
            .limit(rows)
        )
    return _HISTORY[rows]


P = ParamSpec("P")
R = TypeVar("R")

READ_RETRY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.5)
"""A read that meets a transient fault (a dropped connection, a failover) is tried
again: it changes nothing, so trying again is safe. Writes are not (``transient.py``)."""


def _read(
    method: Callable[Concatenate[SqlRepository, P], R],
) -> Callable[Concatenate[SqlRepository, P], R]:
    @functools.wraps(method)
    def read(self: SqlRepository, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return READ_RETRY.call(lambda: method(self, *args, **kwargs), self.engine.dialect.name)

    return read


class SqlRepository:
    """Storage for users, conversations, messages and settings."""

    def __init__(self, engine: sa.Engine, default_settings: Settings) -> None:
        self.engine = engine
        self._default_settings = default_settings
        self.max_parameters = max_parameters(engine.dialect.name)
        """Values of a list in one statement (``dialects.py``)."""
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """A write transaction; on SQLite, one at a time in this process.

        SQLite has one writer. A second writer waiting in SQLite's busy
        handler sleeps 1, 2, 5, 10 ms and more between tries, so while the
        answers' final writes, the new messages and the checkpoint meet, a
        transaction started several milliseconds after the one before it
        had committed. Waiting on a lock here, it starts at that commit.
        """
        with self._writer, self.engine.begin() as connection:
            yield connection

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    # ------------------------------------------------------------- users

    def add_users(self, names: Sequence[str]) -> list[tuple[User, str]]:
        """Create users in one transaction; each gets a fresh token, returned once."""
        created: list[tuple[User, str]] = []
        rows = []
        now = _now()
        for name in names:
            token = secrets.token_urlsafe(32)
            user = User(id=str(uuid.uuid4()), name=name)
            rows.append(
                {"id": user.id, "name": name, "token_hash": hash_token(token), "created_at": now}
            )
            created.append((user, token))
        with self._write() as connection:
            clash = sorted(
                name
                for batch in batches(list(names), self.max_parameters)
                for name in connection.execute(
                    sa.select(users.c.name).where(users.c.name.in_(batch))
                ).scalars()
            )
            if clash:
                raise ValueError(f"user already exists: {', '.join(clash)}")
            if rows:
                connection.execute(users.insert(), rows)
        return created

    @_read
    def user_for_token(self, token: str) -> User | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(users.c.id, users.c.name).where(
                    users.c.token_hash == hash_token(token), users.c.revoked_at.is_(None)
                )
            ).first()
        return None if row is None else User(id=row.id, name=row.name)

    def ensure_user(self, name: str, token: str) -> User:
        """The user ``name`` with ``token`` as its (only) token, created if missing.

        Servers starting together on a new database each try to create it:
        the one that loses the race on the unique name finds it made.
        """
        try:
            return self._ensure_user(name, token)
        except sa.exc.IntegrityError:
            return self._ensure_user(name, token)

    def _ensure_user(self, name: str, token: str) -> User:
        digest = hash_token(token)
        with self._write() as connection:
            row = connection.execute(
                sa.select(users.c.id, users.c.token_hash, users.c.revoked_at).where(
                    users.c.name == name
                )
            ).first()
            if row is None:
                user_id = str(uuid.uuid4())
                connection.execute(
                    users.insert().values(
                        id=user_id, name=name, token_hash=digest, created_at=_now()
                    )
                )
                return User(id=user_id, name=name)
            if row.token_hash != digest or row.revoked_at is not None:
                connection.execute(
                    users.update()
                    .where(users.c.id == row.id)
                    .values(token_hash=digest, revoked_at=None)
                )
            return User(id=row.id, name=name)

    @_read
    def list_users(self) -> list[User]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(users.c.id, users.c.name)
                .where(users.c.revoked_at.is_(None))
                .order_by(users.c.name)
            )
            return [User(id=row.id, name=row.name) for row in rows]

    def revoke_user(self, name: str) -> bool:
        with self._write() as connection:
            result = connection.execute(
                users.update()
                .where(users.c.name == name, users.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            return result.rowcount > 0

    def revoked_among(self, user_ids: Sequence[str]) -> list[str]:
        """Which of ``user_ids`` have had their token revoked (or no longer exist)."""
        revoked: list[str] = []
        with self.engine.connect() as connection:
            for start in range(0, len(user_ids), _IDS_PER_QUERY):
                chunk = list(user_ids[start : start + _IDS_PER_QUERY])
                valid = set(
                    connection.execute(
                        sa.select(users.c.id).where(
                            users.c.id.in_(chunk), users.c.revoked_at.is_(None)
                        )
                    ).scalars()
                )
                revoked += [user_id for user_id in chunk if user_id not in valid]
        return revoked

    # ----------------------------------------------------- conversations

    @_read
    def list_conversations(
        self, user_id: str, limit: int, before: datetime | None
    ) -> list[Conversation]:
        query = sa.select(conversations).where(conversations.c.user_id == user_id)
        if before is not None:
            cutoff = before.astimezone(UTC).replace(tzinfo=None)
            query = query.where(conversations.c.updated_at < cutoff)
        query = query.order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
        with self.engine.connect() as connection:
            return [_conversation(row) for row in connection.execute(query.limit(limit))]

    def create_conversation(self, user_id: str, title: str) -> Conversation:
        now = _now()
        conversation_id = str(uuid.uuid4())
        row = {
            "id": conversation_id,
            "user_id": user_id,
            "title": title,
            "created_at": now,
            "updated_at": now,
            "last_message_at": None,
        }
        with self._write() as connection:
            connection.execute(conversations.insert().values(**row))
        return Conversation(
            id=conversation_id,
            title=title,
            created_at=now.replace(tzinfo=UTC),
            updated_at=now.replace(tzinfo=UTC),
            last_message_at=None,
        )

    def _owned(self, connection: sa.Connection, user_id: str, conversation_id: str) -> Any:
        return connection.execute(
            _OWNED, {"b_conversation": conversation_id, "b_user": user_id}
        ).first()

    @_read
    def get_conversation(self, user_id: str, conversation_id: str) -> Conversation | None:
        with self.engine.connect() as connection:
            row = self._owned(connection, user_id, conversation_id)
        return None if row is None else _conversation(row)

    def rename_conversation(
        self, user_id: str, conversation_id: str, title: str
    ) -> Conversation | None:
        with self._write() as connection:
            result = connection.execute(
                conversations.update()
                .where(conversations.c.id == conversation_id, conversations.c.user_id == user_id)
                .values(title=title, updated_at=_now())
            )
            if result.rowcount == 0:
                return None
            return _conversation(self._owned(connection, user_id, conversation_id))

    def delete_conversation(self, user_id: str, conversation_id: str) -> bool:
        with self._write() as connection:
            if self._owned(connection, user_id, conversation_id) is None:
                return False
            connection.execute(
                messages.delete().where(messages.c.conversation_id == conversation_id)
            )
            connection.execute(conversations.delete().where(conversations.c.id == conversation_id))
            return True

    # ---------------------------------------------------------- messages

    def _touch(
        self,
        connection: sa.Connection,
        user_id: str,
        conversation_id: str,
        now: datetime,
        **values: Any,
    ) -> bool:
        """Mark the user's conversation active; False if it is not theirs or gone."""
        if not values:
            touched = connection.execute(
                _TOUCH, {"b_conversation": conversation_id, "b_user": user_id, "b_now": now}
            )
            return touched.rowcount > 0
        result = connection.execute(
            conversations.update()
            .where(conversations.c.id == conversation_id, conversations.c.user_id == user_id)
            .values(updated_at=now, last_message_at=now, **values)
        )
        return result.rowcount > 0

    def add_message(
        self,
        user_id: str,
        conversation_id: str,
        role: str,
        content: str,
        status: MessageStatus,
        is_audio: bool = False,
        audio_file: str | None = None,
    ) -> tuple[Message, Conversation] | None:
        """Store a message and mark the conversation active, in one transaction."""
        now = _now()
        with self._write() as connection:
            if not self._touch(connection, user_id, conversation_id, now):
                return None
            message, values = _new_message(
                user_id,
                conversation_id,
                "assistant" if role == "assistant" else "user",
                content,
                status,
                is_audio,
                audio_file,
                now,
            )
            connection.execute(_INSERT_MESSAGE, values)
            conversation = _conversation(self._owned(connection, user_id, conversation_id))
        return message, conversation

    def start_exchanges(self, requests: Sequence[ExchangeRequest]) -> list[Exchange | None]:
        """For each request, the user's message, the answer's row (``streaming``)
        and what the model needs to write it; all in one transaction.

        None for a request whose conversation is not the user's (nothing is
        written for it). Several requests for one conversation are stored in
        order, each seeing the ones before it in its history.
        """
        now = _now()
        results: list[Exchange | None] = [None] * len(requests)
        pending = list(enumerate(requests))
        with self._write() as connection:
            while pending:  # rounds of requests for distinct conversations
                seen: set[str] = set()
                this_round: list[tuple[int, ExchangeRequest]] = []
                later: list[tuple[int, ExchangeRequest]] = []
                for item in pending:
                    conversation_id = item[1].conversation_id
                    (later if conversation_id in seen else this_round).append(item)
                    seen.add(conversation_id)
                stored = self._exchanges_in(connection, [r for _, r in this_round], now)
                for (index, _), exchange in zip(this_round, stored, strict=True):
                    results[index] = exchange
                pending = later
        return results

    def _exchanges_in(
        self, connection: sa.Connection, requests: Sequence[ExchangeRequest], now: datetime
    ) -> list[Exchange | None]:
        """``start_exchanges`` for requests in distinct conversations: a statement per
        kind of write for all of them, and a history query each."""
        # The write comes first, so SQLite's write lock is taken at once.
        connection.execute(
            _TOUCH,
            [
                {"b_conversation": r.conversation_id, "b_user": r.user_id, "b_now": now}
                for r in requests
            ],
        )
        found = connection.execute(  # read after the touch: activity times are ``now``
            _EXCHANGE_CONVERSATIONS, {"b_ids": [r.conversation_id for r in requests]}
        ).all()
        rows = {row.id: row for row in found}
        mine = [
            r
            for r in requests
            if (row := rows.get(r.conversation_id)) is not None and row.user_id == r.user_id
        ]
        if not mine:
            return [None] * len(requests)
        retitled = {
            r.conversation_id: r.retitle[1]
            for r in mine
            if r.retitle is not None and rows[r.conversation_id].title == r.retitle[0]
        }
        if retitled:
            connection.execute(
                _RETITLE,
                [
                    {"b_conversation": cid, "b_old": rows[cid].title, "b_new": new}
                    for cid, new in retitled.items()
                ],
            )
        histories = [
            self._history_before(connection, r)
            if rows[r.conversation_id].any_message is not None
            else []
            for r in mine
        ]
        questions = [
            _new_message(
                r.user_id,
                r.conversation_id,
                "user",
                r.content,
                "complete",
                r.is_audio,
                r.audio_file,
                now,
            )
            for r in mine
        ]
        answers = [
            _new_message(
                r.user_id, r.conversation_id, "assistant", "", "streaming", False, None, now
            )
            for r in mine
        ]
        connection.execute(_INSERT_MESSAGE, [values for _, values in questions])
        connection.execute(_INSERT_MESSAGE, [values for _, values in answers])
        settings = self._settings_of(connection, {r.user_id for r in mine})
        exchanges: dict[str, Exchange] = {}
        for r, history, (question, _), (answer, _) in zip(
            mine, histories, questions, answers, strict=True
        ):
            conversation = _conversation(rows[r.conversation_id])
            if conversation.id in retitled:
                conversation = msgspec.structs.replace(
                    conversation, title=retitled[conversation.id]
                )
            if r.history_rows > 0:
                history.append(Turn("user", r.content, "complete"))
            exchanges[r.conversation_id] = Exchange(
                user_message=question,
                answer=answer,
                conversation=conversation,
                settings=settings.get(r.user_id, self._default_settings),
                history=history,
            )
        return [exchanges.get(r.conversation_id) for r in requests]  # one per conversation

    def _history_before(self, connection: sa.Connection, request: ExchangeRequest) -> list[Turn]:
        """The conversation's newest ``history_rows - 1`` turns, oldest first: with the
        new question, ``history_rows`` in all."""
        if request.history_rows <= 1:
            return []
        rows = connection.execute(
            _history(request.history_rows - 1), {"b_conversation": request.conversation_id}
        ).all()
        return [Turn(*row) for row in reversed(rows)]

    def _settings_of(self, connection: sa.Connection, user_ids: set[str]) -> dict[str, Settings]:
        rows = connection.execute(_SETTINGS_OF, {"b_users": sorted(user_ids)}).all()
        return {row.user_id: _settings(row) for row in rows}

    def checkpoint_messages(self, rows: Sequence[tuple[str, str | None, str]]) -> None:
        """The growing text of several answers ``(user_id, message_id, content)``,
        saved in one transaction; an answer no longer streaming (its final write
        came first) keeps what that write stored."""
        if not rows:
            return
        with self._write() as connection:
            connection.execute(
                _CHECKPOINT,
                [{"b_user": u, "b_id": m, "b_content": c} for u, m, c in rows],
            )

    def finish_messages(
        self, requests: Sequence[FinishRequest]
    ) -> list[tuple[Message, Conversation] | None]:
        """The final write of each answer, and its conversation's activity time, in one
        transaction and a statement per kind for all. None for an answer that is gone
        (or not the user's)."""
        now = _now()
        with self._write() as connection:
            connection.execute(
                _FINISH,
                [
                    {
                        "b_id": r.message_id,
                        "b_user": r.user_id,
                        "b_content": r.content,
                        "b_status": r.status,
                    }
                    for r in requests
                ],
            )
            found = connection.execute(
                _MESSAGES_BY_ID, {"b_ids": [r.message_id for r in requests]}
            ).all()
            rows = {row.id: row for row in found}
            mine = {
                r.message_id: row
                for r in requests
                if (row := rows.get(r.message_id)) is not None and row.user_id == r.user_id
            }
            if not mine:
                return [None] * len(requests)
            touched = {(row.user_id, row.conversation_id) for row in mine.values()}
            connection.execute(
                _TOUCH,
                [{"b_user": u, "b_conversation": c, "b_now": now} for u, c in sorted(touched)],
            )
            owned = connection.execute(
                _CONVERSATIONS, {"b_ids": sorted({c for _, c in touched})}
            ).all()
            conversations_by_id = {row.id: row for row in owned}
        results: list[tuple[Message, Conversation] | None] = []
        for r in requests:
            row = mine.get(r.message_id)
            conversation = None if row is None else conversations_by_id.get(row.conversation_id)
            if row is None or conversation is None or conversation.user_id != r.user_id:
                results.append(None)
            else:
                results.append((_message(row), _conversation(conversation)))
        return results

    @_read
    def list_messages(
        self, user_id: str, conversation_id: str, limit: int, before: str | None
    ) -> tuple[list[Message], bool] | None:
        """Up to ``limit`` messages before the message ``before``, oldest first."""
        with self.engine.connect() as connection:
            if self._owned(connection, user_id, conversation_id) is None:
                return None
            query = sa.select(*_MESSAGE_COLUMNS).where(
                messages.c.conversation_id == conversation_id
            )
            if before is not None:
                anchor = connection.execute(
                    sa.select(messages.c.seq).where(
                        messages.c.id == before, messages.c.conversation_id == conversation_id
                    )
                ).scalar()
                if anchor is None:
                    return None
                query = query.where(messages.c.seq < anchor)
            rows = connection.execute(query.order_by(messages.c.seq.desc()).limit(limit + 1)).all()
        has_more = len(rows) > limit
        return [_message(row) for row in reversed(rows[:limit])], has_more

    def interrupt_streaming(self) -> int:
        """At start-up: answers left ``streaming`` by a crash become ``interrupted``."""
        with self._write() as connection:
            result = connection.execute(
                messages.update()
                .where(messages.c.status == "streaming")
                .values(status="interrupted")
            )
            return result.rowcount

    # ---------------------------------------------------------- settings

    @_read
    def get_settings(self, user_id: str) -> Settings:
        with self.engine.connect() as connection:
            return self._settings_in(connection, user_id)

    def _settings_in(self, connection: sa.Connection, user_id: str) -> Settings:
        row = connection.execute(_SETTINGS, {"b_user": user_id}).first()
        return self._default_settings if row is None else _settings(row)

    def save_settings(self, user_id: str, settings: Settings) -> Settings:
        values = {
            "selected_model": settings.selected_model,
            "voice_gender": settings.voice_settings.gender,
            "voice_accent": settings.voice_settings.accent,
            "voice_speed": settings.voice_settings.speed,
            "assistant_personality": settings.assistant_personality,
            "updated_at": _now(),
        }
        with self._write() as connection:
            connection.execute(settings_upsert(self.engine.dialect.name, user_id, values))
        return settings
