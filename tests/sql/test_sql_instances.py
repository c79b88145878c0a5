"""The instance registry: each answer names its instance, and a sweep cuts off only the
answers of instances that stopped beating (or, alone, of every earlier instance)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from pichat_trio.adapters.sql.instances import InstanceRegistry
from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.adapters.sql.tables import instances
from pichat_trio.models import ExchangeRequest, User


def _answer_of(repo: SqlRepository, user: User, instance_id: str | None) -> str:
    """A streaming answer started by ``instance_id``; its message id."""
    repo.instance_id = instance_id
    conversation = repo.create_conversation(user.id, "c")
    [exchange] = repo.start_exchanges([ExchangeRequest(user.id, conversation.id, "hi")])
    assert exchange is not None
    return exchange.answer.id


def _statuses(repo: SqlRepository, user: User) -> dict[str, str]:
    statuses = {}
    for conversation in repo.list_conversations(user.id, 100, None):
        found = repo.list_messages(user.id, conversation.id, 10, None)
        assert found is not None
        for message in found[0]:
            if message.role == "assistant":
                statuses[message.id] = message.status
    return statuses


def test_a_sweep_interrupts_only_the_answers_of_silent_instances(
    repo: SqlRepository, alice: User
) -> None:
    dead = InstanceRegistry(repo.engine, "dead", timeout=5)
    live = InstanceRegistry(repo.engine, "live", timeout=5)
    dead.register()
    live.register()
    with repo.engine.begin() as connection:  # "dead" last beat a minute ago
        connection.execute(
            instances.update()
            .where(instances.c.id == "dead")
            .values(heartbeat_at=datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1))
        )
    of_dead = _answer_of(repo, alice, "dead")
    of_live = _answer_of(repo, alice, "live")
    of_nobody = _answer_of(repo, alice, None)  # from before instances were recorded

    assert live.sweep() == 2
    assert _statuses(repo, alice) == {
        of_dead: "interrupted",
        of_live: "streaming",
        of_nobody: "interrupted",
    }
    with repo.engine.connect() as connection:
        assert connection.execute(sa.select(instances.c.id)).scalars().all() == ["live"]
    assert live.sweep() == 0
    live.beat()  # a beat after its row was swept away writes it again
    dead.beat()
    with repo.engine.connect() as connection:
        assert sorted(connection.execute(sa.select(instances.c.id)).scalars()) == ["dead", "live"]


def test_alone_every_earlier_answer_is_cut_off(repo: SqlRepository, alice: User) -> None:
    earlier = InstanceRegistry(repo.engine, "earlier", timeout=5)
    earlier.register()
    of_earlier = _answer_of(repo, alice, "earlier")  # its heartbeat is recent
    now = InstanceRegistry(repo.engine, "now", timeout=5)
    now.register()
    assert now.sweep(alone=True) == 1
    assert _statuses(repo, alice) == {of_earlier: "interrupted"}
    now.leave()
    with repo.engine.connect() as connection:
        assert connection.execute(sa.select(instances.c.id)).scalars().all() == []
