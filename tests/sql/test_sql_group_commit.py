"""Writes that arrive at the same moment, stored together: the repository's batches
(messages sent, answers finished) and the service's group commit, on SQLite and
PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import pytest
import trio
import trio.testing

from pichat_trio.adapters.sql.repository import SqlRepository
from pichat_trio.models import (
    Exchange,
    ExchangeRequest,
    FinishRequest,
    Settings,
    User,
    VoiceSettings,
)
from pichat_trio.services.db import Database
from pichat_trio.services.group_commit import GroupCommit


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
    queue = GroupCommit(Database(repo, 4), repo.start_exchanges, max_batch=16)
    results: dict[int, str] = {}

    async def send(i: int) -> None:
        exchange = await queue.submit(ExchangeRequest(alice.id, conversations[i].id, f"m{i}"))
        assert exchange is not None
        results[i] = exchange.user_message.content

    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
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
    queue = GroupCommit(Database(repo, 4), repo.start_exchanges)
    outcomes: dict[str, object] = {}

    async def send(content: str, conversation_id: str) -> None:
        try:
            exchange = await queue.submit(ExchangeRequest(alice.id, conversation_id, content))
            outcomes[content] = exchange.user_message.content if exchange else None
        except RuntimeError as exc:
            outcomes[content] = str(exc)

    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
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
        release.wait(60)  # in flight until the sender's cancellation was delivered
        return original(requests)  # type: ignore[return-value]

    repo.start_exchanges = held  # type: ignore[method-assign]
    queue = GroupCommit(Database(repo, 4), repo.start_exchanges)
    sender = trio.CancelScope()
    outcome: list[str] = []
    finished = trio.Event()

    async def send() -> None:
        with sender:
            await queue.submit(ExchangeRequest(alice.id, conversation.id, "hello"))
            outcome.append("returned")
        outcome.append("cancelled" if sender.cancelled_caught else "done")
        finished.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        if not taken:  # the task is busy with another request: ours waits, not taken
            other = repo.create_conversation(alice.id, "Untitled")
            nursery.start_soon(queue.submit, ExchangeRequest(alice.id, other.id, "first"))
            await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()  # waiting, or taken and in the thread
        sender.cancel()
        # The cancellation reaches the sender before the thread goes on: a thread that
        # finished its batch first would take a request still waiting (it takes what
        # waits, under the queue's lock), and so store one whose sender was cancelled.
        await trio.testing.wait_all_tasks_blocked()
        assert outcome == (["cancelled"] if not taken else [])
        release.set()
        with trio.fail_after(30):  # a hang guard: a taken request waits for its transaction
            await finished.wait()
        nursery.cancel_scope.cancel()
    assert outcome == ["cancelled"]  # even a stored request reports the cancellation
    assert len(queue) == 0
    listed, _ = repo.list_messages(alice.id, conversation.id, 10, None) or ([], False)
    assert [m.content for m in listed] == (["hello", ""] if taken else [])


def test_answers_finished_together_are_written_in_one_batch(
    repo: SqlRepository, alice: User, bob: User
) -> None:
    conversations = [repo.create_conversation(alice.id, "Untitled") for _ in range(3)]
    exchanges = repo.start_exchanges(
        [ExchangeRequest(alice.id, c.id, f"q{i}") for i, c in enumerate(conversations)]
    )
    answers = [e.answer.id for e in exchanges if e is not None]
    requests = [
        FinishRequest(alice.id, answers[0], "one", "complete"),
        FinishRequest(bob.id, answers[1], "not bob's", "complete"),
        FinishRequest(alice.id, "no-such-answer", "x", "complete"),
        FinishRequest(alice.id, answers[2], "three, cut", "interrupted"),
    ]

    results = repo.finish_messages(requests)

    assert results[1] is None and results[2] is None
    first, third = results[0], results[3]
    assert first is not None and third is not None
    assert (first[0].content, first[0].status) == ("one", "complete")
    assert (third[0].content, third[0].status) == ("three, cut", "interrupted")
    assert first[1].id == conversations[0].id and first[1].last_message_at is not None
    stored, _ = repo.list_messages(alice.id, conversations[1].id, 10, None) or ([], False)
    assert [(m.content, m.status) for m in stored] == [("q1", "complete"), ("", "streaming")]


async def test_without_its_task_a_request_is_stored_alone(repo: SqlRepository, alice: User) -> None:
    conversation = repo.create_conversation(alice.id, "Untitled")
    queue = GroupCommit(Database(repo, 4), repo.start_exchanges)
    exchange = await queue.submit(ExchangeRequest(alice.id, conversation.id, "no runner"))
    assert exchange is not None and exchange.user_message.content == "no runner"


async def test_requests_waiting_when_the_task_stops_are_stored_alone(
    repo: SqlRepository, alice: User
) -> None:
    """At shutdown the task goes first; the answers still ending must be written."""
    conversations = [repo.create_conversation(alice.id, "Untitled") for _ in range(3)]
    release = threading.Event()
    original = repo.start_exchanges

    def held(requests: list[ExchangeRequest]) -> list[object]:
        release.wait(5)
        return original(requests)  # type: ignore[return-value]

    queue = GroupCommit(Database(repo, 4), held)
    stored: list[str] = []

    async def send(i: int) -> None:
        exchange = await queue.submit(ExchangeRequest(alice.id, conversations[i].id, f"m{i}"))
        assert exchange is not None
        stored.append(exchange.user_message.content)

    async with trio.open_nursery() as nursery:
        runner = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None]) -> None:
            with runner:
                await queue.run(task_status=task_status)

        await nursery.start(run)
        nursery.start_soon(send, 0)  # taken at once: its thread waits for the release
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(send, 1)  # these wait for the next batch
        nursery.start_soon(send, 2)
        await trio.testing.wait_all_tasks_blocked()
        assert len(queue) == 2
        runner.cancel()  # the batch in flight is shielded; the waiting two go alone
        release.set()
    assert sorted(stored) == ["m0", "m1", "m2"]
    assert len(queue) == 0


def test_a_batch_with_repeats_histories_and_settings_per_user(
    repo: SqlRepository, alice: User, bob: User
) -> None:
    """One batch: a conversation twice (the second sees the first), a history limit,
    a retitle, another user's settings, and a foreign conversation refused."""
    a = repo.create_conversation(alice.id, "Untitled")
    b = repo.create_conversation(bob.id, "Untitled")
    for i in range(4):
        repo.add_message(alice.id, a.id, "user", f"e{i}", "complete")
    bobs = Settings(
        selected_model="gpt-4", voice_settings=VoiceSettings(), assistant_personality="Bob's"
    )
    repo.save_settings(bob.id, bobs)

    results = repo.start_exchanges(
        [
            ExchangeRequest(alice.id, a.id, "qA", history_rows=3),
            ExchangeRequest(bob.id, b.id, "qB", retitle=("Untitled", "B!")),
            ExchangeRequest(alice.id, a.id, "qA2", history_rows=10),
            ExchangeRequest(alice.id, b.id, "not hers"),
        ]
    )

    first, for_bob, second, refused = results
    assert refused is None
    assert first is not None and for_bob is not None and second is not None
    assert [t.content for t in first.history] == ["e2", "e3", "qA"]
    assert [(t.role, t.content, t.status) for t in second.history[-3:]] == [
        ("user", "qA", "complete"),
        ("assistant", "", "streaming"),
        ("user", "qA2", "complete"),
    ]
    assert len(second.history) == 7
    assert for_bob.conversation.title == "B!" and first.conversation.title == "Untitled"
    assert for_bob.settings == bobs
    assert first.settings.assistant_personality != "Bob's"  # alice has the defaults
    stored, _ = repo.list_messages(alice.id, a.id, 20, None) or ([], False)
    assert [(m.content, m.status) for m in stored][4:] == [
        ("qA", "complete"),
        ("", "streaming"),
        ("qA2", "complete"),
        ("", "streaming"),
    ]
    assert [m.id for m in stored][4:] == [
        first.user_message.id,
        first.answer.id,
        second.user_message.id,
        second.answer.id,
    ]
    assert repo.get_conversation(bob.id, b.id) == for_bob.conversation
    listed, _ = repo.list_messages(bob.id, b.id, 20, None) or ([], False)
    assert [m.content for m in listed] == ["qB", ""]  # nothing of alice's request


class _Steps(trio.abc.Instrument):
    """Counts the steps of one task."""

    def __init__(self) -> None:
        self.task: trio.lowlevel.Task | None = None
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


class _HeldBatches:
    """A first request taken alone and held in its thread, three more waiting
    behind it, then the hold released: how the four settle."""

    def __init__(self, repo: SqlRepository, alice: User, threads: int = 4) -> None:
        self.repo = repo
        self.alice = alice
        self.release = threading.Event()
        self.calls: list[list[str]] = []  # each database call's contents
        self.threads: list[int] = []  # the thread of each of the store's calls
        self.max_chain = 8
        self.database = Database(repo, threads)
        self.steps = _Steps()
        self.poison: set[str] = set()  # contents whose batches fail
        self.while_held: Callable[[trio.Nursery], None] = lambda nursery: None

    def store(self, requests: Sequence[ExchangeRequest]) -> list[Exchange | None]:
        self.calls.append([r.content for r in requests])
        self.threads.append(threading.get_ident())
        self.release.wait(5)
        if any(r.content in self.poison for r in requests):
            raise RuntimeError(f"refused: {len(requests)} together")
        return self.repo.start_exchanges(requests)

    async def run(self) -> dict[str, str]:
        conversations = [self.repo.create_conversation(self.alice.id, "New") for _ in range(4)]
        queue = GroupCommit(self.database, self.store, max_chain=self.max_chain)
        outcomes: dict[str, str] = {}

        async def run_queue(task_status: trio.TaskStatus[None]) -> None:
            self.steps.task = trio.lowlevel.current_task()
            await queue.run(task_status=task_status)

        async def send(i: int) -> None:
            request = ExchangeRequest(self.alice.id, conversations[i].id, f"m{i}")
            try:
                exchange = await queue.submit(request)
                outcomes[request.content] = exchange.user_message.content if exchange else ""
            except RuntimeError as exc:
                outcomes[request.content] = str(exc)

        trio.lowlevel.add_instrument(self.steps)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(run_queue)
                async with trio.open_nursery() as senders:
                    senders.start_soon(send, 0)
                    await trio.testing.wait_all_tasks_blocked()
                    for i in range(1, 4):
                        senders.start_soon(send, i)
                    await trio.testing.wait_all_tasks_blocked()
                    assert len(queue) == 3  # waiting behind the batch in flight
                    self.while_held(senders)
                    await trio.testing.wait_all_tasks_blocked()
                    self.release.set()
                nursery.cancel_scope.cancel()
        finally:
            trio.lowlevel.remove_instrument(self.steps)
        return outcomes


async def test_the_next_batch_starts_as_the_last_ends_without_a_step_of_the_task(
    repo: SqlRepository, alice: User
) -> None:
    """The thread that stored a batch stores the next one at once; the group
    commit's task takes no step in between."""
    held = _HeldBatches(repo, alice)
    steps_at_call: list[int] = []
    store = held.store

    def counting(requests: Sequence[ExchangeRequest]) -> list[Exchange | None]:
        steps_at_call.append(held.steps.steps)
        return store(requests)

    held.store = counting  # type: ignore[method-assign]
    outcomes = await held.run()
    assert outcomes == {f"m{i}": f"m{i}" for i in range(4)}
    assert [sorted(call) for call in held.calls] == [["m0"], ["m1", "m2", "m3"]]
    assert steps_at_call[1] == steps_at_call[0]


async def test_a_failure_in_a_chained_batch_is_retried_one_by_one(
    repo: SqlRepository, alice: User
) -> None:
    held = _HeldBatches(repo, alice)
    held.poison = {"m2"}
    outcomes = await held.run()
    assert outcomes == {"m0": "m0", "m1": "m1", "m2": "refused: 1 together", "m3": "m3"}
    first, together, *alone = held.calls
    assert (first, sorted(together), sorted(alone)) == (
        ["m0"],
        ["m1", "m2", "m3"],
        [["m1"], ["m2"], ["m3"]],
    )


async def _with_another_call(held: _HeldBatches) -> list[list[str]]:
    """``held.run()`` with another database call started while the first batch is
    held; the contents of each call, in order."""

    def other_call() -> None:
        held.calls.append(["other"])

    def start_other(nursery: trio.Nursery) -> None:
        nursery.start_soon(held.database.run, other_call)

    held.while_held = start_other
    outcomes = await held.run()
    assert outcomes == {f"m{i}": f"m{i}" for i in range(4)}
    return [sorted(call) for call in held.calls]


async def test_the_thread_stores_the_batches_that_follow_before_other_calls(
    repo: SqlRepository, alice: User
) -> None:
    """One database thread, and another call waiting for it: the batch waiting
    when the first ends is stored by the same thread, then the call gets it."""
    held = _HeldBatches(repo, alice, threads=1)
    assert await _with_another_call(held) == [["m0"], ["m1", "m2", "m3"], ["other"]]
    assert held.threads[0] == held.threads[1]


async def test_with_no_free_thread_the_next_batch_waits_for_one(
    repo: SqlRepository, alice: User
) -> None:
    """One database thread; when it has stored ``max_chain`` batches, another
    call waiting for it gets it, and the next batch is stored through the task
    after that call."""
    held = _HeldBatches(repo, alice, threads=1)
    held.max_chain = 1
    assert await _with_another_call(held) == [["m0"], ["other"], ["m1", "m2", "m3"]]
