"""Messages sent at the same moment, stored together: the repository's batch and the
service's group commit, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.models import ExchangeRequest, User
from pichat_trio.services.db import Database
from pichat_trio.services.exchanges import ExchangeQueue


def test_a_batch_stores_each_exchange_and_skips_foreign_conversations(
    repo: SqlRepository, alice: User, bob: User
) -> None:
    mine = [repo.create_conversation(alice.id, "Untitled") for _ in range(3)]
    theirs = repo.create_conversation(bob.id, "Untitled")
    requests = [
        ExchangeRequest(alice.id, c.id, f"q{i}", retitle=("Untitled", f"T{i}"))
        for i, c in enumerate(mine)
    ]
    requests.insert(1, ExchangeRequest(alice.id, theirs.id, "not mine"))

    results = repo.start_exchanges(requests)

    assert results[1] is None
    stored = [r for r in results if r is not None]
    assert [e.user_message.content for e in stored] == ["q0", "q1", "q2"]
    assert [e.conversation.title for e in stored] == ["T0", "T1", "T2"]
    assert all(e.answer.status == "streaming" for e in stored)
    listed, _ = repo.list_messages(bob.id, theirs.id, 10, None) or ([], False)
    assert listed == []  # nothing written for the refused request


async def test_requests_that_arrive_together_share_one_transaction(
    repo: SqlRepository, alice: User
) -> None:
    conversations = [repo.create_conversation(alice.id, "Untitled") for _ in range(30)]
    batches: list[int] = []
    original = repo.start_exchanges

    def counting(requests: list[ExchangeRequest]) -> list[object]:
        batches.append(len(requests))
        return original(requests)  # type: ignore[return-value]

    repo.start_exchanges = counting  # type: ignore[method-assign]
    queue = ExchangeQueue(Database(repo, 4), max_batch=16)
    results: dict[int, str] = {}

    async def send(i: int) -> None:
        exchange = await queue.start(ExchangeRequest(alice.id, conversations[i].id, f"m{i}"))
        assert exchange is not None
        results[i] = exchange.user_message.content

    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)
        async with trio.open_nursery() as senders:
            for i in range(30):
                senders.start_soon(send, i)
        nursery.cancel_scope.cancel()

    assert results == {i: f"m{i}" for i in range(30)}
    assert sum(batches) == 30
    assert len(batches) < 30 and max(batches) <= 16  # batched, and bounded


async def test_a_failing_batch_is_retried_one_by_one(repo: SqlRepository, alice: User) -> None:
    good = [repo.create_conversation(alice.id, "Untitled") for _ in range(3)]
    original = repo.start_exchanges

    def fails_with_the_poison(requests: list[ExchangeRequest]) -> list[object]:
        if any(r.content == "poison" for r in requests):
            raise RuntimeError("the database refused it")
        return original(requests)  # type: ignore[return-value]

    repo.start_exchanges = fails_with_the_poison  # type: ignore[method-assign]
    queue = ExchangeQueue(Database(repo, 4))
    outcomes: dict[str, object] = {}

    async def send(content: str, conversation_id: str) -> None:
        try:
            exchange = await queue.start(ExchangeRequest(alice.id, conversation_id, content))
            outcomes[content] = exchange.user_message.content if exchange else None
        except RuntimeError as exc:
            outcomes[content] = str(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.run)
        async with trio.open_nursery() as senders:
            for i, conversation in enumerate(good):
                senders.start_soon(send, f"ok{i}", conversation.id)
            senders.start_soon(send, "poison", good[0].id)
        nursery.cancel_scope.cancel()

    assert outcomes == {
        "ok0": "ok0",
        "ok1": "ok1",
        "ok2": "ok2",
        "poison": "the database refused it",
    }


@pytest.mark.parametrize("taken", [False, True])
async def test_a_cancelled_sender_stores_nothing_unless_its_batch_was_taken(
    repo: SqlRepository, alice: User, taken: bool
) -> None:
    conversation = repo.create_conversation(alice.id, "Untitled")
    release = threading.Event()
    original = repo.start_exchanges

    def held(requests: list[ExchangeRequest]) -> list[object]:
        release.wait(5)  # in flight until the sender has been cancelled
        return original(requests)  # type: ignore[return-value]

    repo.start_exchanges = held  # type: ignore[method-assign]
    queue = ExchangeQueue(Database(repo, 4))
    sender = trio.CancelScope()
    outcome: list[str] = []
    finished = trio.Event()

    async def send() -> None:
        with sender:
            await queue.start(ExchangeRequest(alice.id, conversation.id, "hello"))
            outcome.append("returned")
        outcome.append("cancelled" if sender.cancelled_caught else "done")
        finished.set()

    async with trio.open_nursery() as nursery:
        if taken:
            nursery.start_soon(queue.run)
        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()  # queued; with a runner, in its thread
        sender.cancel()
        release.set()
        with trio.fail_after(5):
            await finished.wait()  # a taken request first waits for its transaction
        nursery.cancel_scope.cancel()
    assert outcome == ["cancelled"]  # even a stored request reports the cancellation
    assert len(queue) == 0
    listed, _ = repo.list_messages(alice.id, conversation.id, 10, None) or ([], False)
    assert [m.content for m in listed] == (["hello", ""] if taken else [])
