"""The start of exchanges (a question stored, its answer's row opened), in batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa

from ...models import Exchange, ExchangeRequest, Settings, Turn
from .rows import conversation_of, new_message, now_utc, settings_of
from .store import INSERT_MESSAGE, TOUCH, SqlStore
from .tables import conversations, messages, user_settings

__all__ = ["ExchangeStore"]

# Built once with bound parameters, as the statements in ``store.py``.
_RETITLE = (
    conversations.update()
    .where(
        conversations.c.id == sa.bindparam("b_conversation"),
        conversations.c.title == sa.bindparam("b_old"),
    )
    .values(title=sa.bindparam("b_new"))
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


class ExchangeStore(SqlStore):
    """``start_exchanges``: what ``send_message`` stores, for many requests at once."""

    def start_exchanges(self, requests: Sequence[ExchangeRequest]) -> list[Exchange | None]:
        """For each request, the user's message, the answer's row (``streaming``)
        and what the model needs to write it; all in one transaction.

        None for a request whose conversation is not the user's (nothing is
        written for it). Several requests for one conversation are stored in
        order, each seeing the ones before it in its history.
        """
        now = now_utc()
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
            TOUCH,
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
            new_message(
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
            new_message(
                r.user_id, r.conversation_id, "assistant", "", "streaming", False, None, now
            )
            for r in mine
        ]
        connection.execute(INSERT_MESSAGE, [values for _, values in questions])
        connection.execute(
            INSERT_MESSAGE,
            [dict(values, instance_id=self.instance_id) for _, values in answers],
        )
        settings = self._settings_of(connection, {r.user_id for r in mine})
        exchanges: dict[str, Exchange] = {}
        for r, history, (question, _), (answer, _) in zip(
            mine, histories, questions, answers, strict=True
        ):
            conversation = conversation_of(rows[r.conversation_id])
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
        return {row.user_id: settings_of(row) for row in rows}
