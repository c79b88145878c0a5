"""The ``Repository`` contract of ``SqlRepository``, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from pichat_trio.adapters.sql import migrate, tables
from pichat_trio.adapters.sql.engine import create_engine
from pichat_trio.adapters.sql.repository import SqlRepository, hash_token
from pichat_trio.errors import Unavailable
from pichat_trio.models import (
    Conversation,
    ExchangeRequest,
    FinishRequest,
    Message,
    MessageStatus,
    Settings,
    User,
    VoiceSettings,
)

POLISH = "Zażółć gęślą jaźń — ŻÓŁTA ĆMA 🦊🎉"


def finish_one(
    repo: SqlRepository, user_id: str, message_id: str, content: str, status: MessageStatus
) -> tuple[Message, Conversation] | None:
    [result] = repo.finish_messages([FinishRequest(user_id, message_id, content, status)])
    return result


def _is_utc(value: datetime) -> bool:
    return value.tzinfo is UTC


def _recent(value: datetime) -> bool:
    return abs(datetime.now(UTC) - value) < timedelta(minutes=5)


def _message(
    repo: SqlRepository,
    user: User,
    conversation: Conversation,
    content: str,
    status: MessageStatus = "complete",
) -> Message:
    added = repo.add_message(user.id, conversation.id, "user", content, status)
    assert added is not None
    return added[0]


# ------------------------------------------------------------------ users


def test_add_users_returns_one_fresh_token_each_in_order(repo: SqlRepository) -> None:
    created = repo.add_users(["alice", "bob", "carol"])

    assert [user.name for user, _ in created] == ["alice", "bob", "carol"]
    tokens = [token for _, token in created]
    assert len(set(tokens)) == 3
    assert all(len(token) >= 40 for token in tokens)
    assert len({user.id for user, _ in created}) == 3
    for user, token in created:
        assert repo.user_for_token(token) == user
    assert repo.list_users() == sorted((user for user, _ in created), key=lambda u: u.name)


def test_tokens_are_stored_hashed(repo: SqlRepository) -> None:
    [(user, token)] = repo.add_users(["alice"])
    with repo.engine.connect() as connection:
        stored = connection.execute(
            sa.select(tables.users.c.token_hash).where(tables.users.c.id == user.id)
        ).scalar_one()
    assert stored == hash_token(token)
    assert token not in stored


def test_add_users_is_one_transaction(repo: SqlRepository) -> None:
    commits: list[object] = []

    def on_commit(connection: object) -> None:
        commits.append(connection)

    sa.event.listen(repo.engine, "commit", on_commit)
    try:
        created = repo.add_users([f"user-{n:03}" for n in range(300)])
    finally:
        sa.event.remove(repo.engine, "commit", on_commit)
    assert len(created) == 300
    assert len(commits) == 1
    assert len(repo.list_users()) == 300


def test_add_users_with_a_taken_name_creates_none(repo: SqlRepository) -> None:
    [(alice, alice_token)] = repo.add_users(["alice"])

    with pytest.raises(ValueError, match="user already exists: alice"):
        repo.add_users(["carol", "alice", "dave"])

    assert repo.list_users() == [alice]
    assert repo.user_for_token(alice_token) == alice


def test_add_users_refuses_a_revoked_name_too(repo: SqlRepository) -> None:
    repo.add_users(["alice"])
    assert repo.revoke_user("alice")
    with pytest.raises(ValueError, match="alice"):
        repo.add_users(["alice"])


def test_user_for_token(repo: SqlRepository) -> None:
    [(alice, token)] = repo.add_users(["alice"])
    assert repo.user_for_token(token) == alice
    assert repo.user_for_token(token + "x") is None
    assert repo.user_for_token("") is None

    assert repo.revoke_user("alice") is True
    assert repo.user_for_token(token) is None


def test_revoke_user(repo: SqlRepository) -> None:
    created = dict((user.name, (user, token)) for user, token in repo.add_users(["a", "b"]))
    assert repo.revoke_user("a") is True
    assert repo.revoke_user("a") is False
    assert repo.revoke_user("nobody") is False
    assert repo.list_users() == [created["b"][0]]
    assert repo.user_for_token(created["b"][1]) == created["b"][0]


def test_ensure_user_creates_updates_and_unrevokes(repo: SqlRepository) -> None:
    first = repo.ensure_user("default", "first-token-0123456789")
    assert first.name == "default"
    assert repo.user_for_token("first-token-0123456789") == first
    assert repo.list_users() == [first]

    same = repo.ensure_user("default", "first-token-0123456789")
    assert same == first

    changed = repo.ensure_user("default", "second-token-0123456789")
    assert changed == first
    assert repo.user_for_token("first-token-0123456789") is None
    assert repo.user_for_token("second-token-0123456789") == first

    assert repo.revoke_user("default")
    assert repo.user_for_token("second-token-0123456789") is None
    back = repo.ensure_user("default", "second-token-0123456789")
    assert back == first
    assert repo.user_for_token("second-token-0123456789") == first
    assert repo.list_users() == [first]


def test_unicode_user_name(repo: SqlRepository) -> None:
    [(user, token)] = repo.add_users(["Łukasz 🦊"])
    assert repo.user_for_token(token) == User(id=user.id, name="Łukasz 🦊")
    assert [u.name for u in repo.list_users()] == ["Łukasz 🦊"]


# ---------------------------------------------------------- conversations


def test_create_and_get_conversation(repo: SqlRepository, alice: User) -> None:
    created = repo.create_conversation(alice.id, POLISH)

    assert created.title == POLISH
    assert created.last_message_at is None
    assert created.created_at == created.updated_at
    assert _is_utc(created.created_at)
    assert _recent(created.created_at)
    fetched = repo.get_conversation(alice.id, created.id)
    assert fetched == created  # microseconds and the title survive the round trip
    assert fetched is not None
    assert _is_utc(fetched.created_at)
    assert _is_utc(fetched.updated_at)
    assert repo.get_conversation(alice.id, "00000000-0000-0000-0000-000000000000") is None


def test_times_keep_their_microseconds(repo: SqlRepository, alice: User) -> None:
    created = [repo.create_conversation(alice.id, f"c{n}") for n in range(5)]
    fetched = [repo.get_conversation(alice.id, c.id) for c in created]
    assert fetched == created
    # Five microsecond values that are all multiples of 1000 would mean milliseconds.
    assert any(c.created_at.microsecond % 1000 for c in created)


def test_rename_conversation(repo: SqlRepository, alice: User) -> None:
    created = repo.create_conversation(alice.id, "old")

    renamed = repo.rename_conversation(alice.id, created.id, "Nowy tytuł 🚀")

    assert renamed is not None
    assert renamed.id == created.id
    assert renamed.title == "Nowy tytuł 🚀"
    assert renamed.created_at == created.created_at
    assert renamed.updated_at > created.updated_at
    assert _is_utc(renamed.updated_at)
    assert repo.get_conversation(alice.id, created.id) == renamed
    assert repo.rename_conversation(alice.id, "no-such-id", "x") is None


def test_delete_conversation_removes_its_messages(repo: SqlRepository, alice: User) -> None:
    doomed = repo.create_conversation(alice.id, "doomed")
    kept = repo.create_conversation(alice.id, "kept")
    for text in ("one", "two"):
        _message(repo, alice, doomed, text)
    kept_message = _message(repo, alice, kept, "stays")

    assert repo.delete_conversation(alice.id, doomed.id) is True

    assert repo.get_conversation(alice.id, doomed.id) is None
    assert repo.list_messages(alice.id, doomed.id, 10, None) is None
    assert repo.delete_conversation(alice.id, doomed.id) is False
    with repo.engine.connect() as connection:
        left = connection.execute(sa.select(tables.messages.c.id)).scalars().all()
    assert left == [kept_message.id]
    assert [c.id for c in repo.list_conversations(alice.id, 10, None)] == [kept.id]


def test_list_conversations_newest_activity_first(repo: SqlRepository, alice: User) -> None:
    first = repo.create_conversation(alice.id, "first")
    second = repo.create_conversation(alice.id, "second")
    third = repo.create_conversation(alice.id, "third")
    assert [c.id for c in repo.list_conversations(alice.id, 10, None)] == [
        third.id,
        second.id,
        first.id,
    ]

    _message(repo, alice, first, "bump")
    listed = repo.list_conversations(alice.id, 10, None)
    assert [c.id for c in listed] == [first.id, third.id, second.id]
    assert listed[0] == repo.get_conversation(alice.id, first.id)

    assert [c.id for c in repo.list_conversations(alice.id, 2, None)] == [first.id, third.id]
    page = repo.list_conversations(alice.id, 10, listed[1].updated_at)
    assert [c.id for c in page] == [second.id]
    assert repo.list_conversations(alice.id, 10, second.updated_at) == []
    # A cursor in another zone means the same instant.
    warsaw = listed[1].updated_at.astimezone(ZoneInfo("Europe/Warsaw"))
    assert [c.id for c in repo.list_conversations(alice.id, 10, warsaw)] == [second.id]


def test_user_b_cannot_touch_user_a_conversation(
    repo: SqlRepository, alice: User, bob: User
) -> None:
    conversation = repo.create_conversation(alice.id, "private")
    message = _message(repo, alice, conversation, "secret")

    assert repo.get_conversation(bob.id, conversation.id) is None
    assert repo.rename_conversation(bob.id, conversation.id, "mine") is None
    assert repo.delete_conversation(bob.id, conversation.id) is False
    assert repo.list_conversations(bob.id, 10, None) == []
    assert repo.add_message(bob.id, conversation.id, "user", "hi", "complete") is None
    assert repo.list_messages(bob.id, conversation.id, 10, None) is None
    repo.checkpoint_messages([(bob.id, message.id, "changed")])
    assert finish_one(repo, bob.id, message.id, "changed", "error") is None

    after = repo.get_conversation(alice.id, conversation.id)
    assert after is not None
    assert after.title == "private"
    listed = repo.list_messages(alice.id, conversation.id, 10, None)
    assert listed == ([message], False)


# --------------------------------------------------------------- messages


def test_add_message_marks_the_conversation_active(repo: SqlRepository, alice: User) -> None:
    conversation = repo.create_conversation(alice.id, "chat")

    added = repo.add_message(
        alice.id, conversation.id, "user", POLISH, "complete", is_audio=True, audio_file="a.wav"
    )

    assert added is not None
    message, updated = added
    assert message.conversation_id == conversation.id
    assert (message.role, message.content, message.status) == ("user", POLISH, "complete")
    assert (message.is_audio, message.audio_file) == (True, "a.wav")
    assert _is_utc(message.created_at)
    assert updated.id == conversation.id
    assert updated.last_message_at == message.created_at
    assert updated.updated_at == message.created_at
    assert updated.created_at == conversation.created_at
    assert repo.get_conversation(alice.id, conversation.id) == updated
    assert repo.list_messages(alice.id, conversation.id, 10, None) == ([message], False)


def test_add_message_to_unknown_conversation(repo: SqlRepository, alice: User) -> None:
    assert repo.add_message(alice.id, "no-such-id", "user", "x", "complete") is None
    with repo.engine.connect() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(tables.messages))
        assert count.scalar_one() == 0


def test_checkpoint_messages_saves_several_answers_at_once(
    repo: SqlRepository, alice: User, bob: User
) -> None:
    conversation = repo.create_conversation(alice.id, "chat")
    first = repo.add_message(alice.id, conversation.id, "assistant", "", "streaming")
    second = repo.add_message(alice.id, conversation.id, "assistant", "", "streaming")
    assert first is not None and second is not None

    repo.checkpoint_messages(
        [
            (alice.id, first[0].id, "Dzień dobry"),
            (alice.id, second[0].id, "Hello"),
            (bob.id, first[0].id, "not bob's to write"),
            (alice.id, "no-such-id", "x"),
        ]
    )
    repo.checkpoint_messages([])

    listed = repo.list_messages(alice.id, conversation.id, 10, None)
    assert listed is not None
    stored = listed[0]
    assert [m.content for m in stored] == ["Dzień dobry", "Hello"]
    assert all(m.status == "streaming" and m.role == "assistant" for m in stored)
    assert stored[0].created_at == first[0].created_at


def test_a_checkpoint_after_the_final_write_changes_nothing(
    repo: SqlRepository, alice: User
) -> None:
    """A checkpoint taken mid-answer may reach the database after the answer's final
    write (two threads): the final text and status stay."""
    conversation = repo.create_conversation(alice.id, "chat")
    added = repo.add_message(alice.id, conversation.id, "assistant", "", "streaming")
    assert added is not None
    answer = added[0]
    assert finish_one(repo, alice.id, answer.id, "the whole answer", "complete") is not None
    repo.checkpoint_messages([(alice.id, answer.id, "the whole")])
    listed = repo.list_messages(alice.id, conversation.id, 10, None)
    assert listed is not None
    [stored] = listed[0]
    assert (stored.content, stored.status) == ("the whole answer", "complete")


def test_finish_message(repo: SqlRepository, alice: User) -> None:
    conversation = repo.create_conversation(alice.id, "chat")
    added = repo.add_message(alice.id, conversation.id, "assistant", "", "streaming")
    assert added is not None
    answer, after_add = added

    finished = finish_one(repo, alice.id, answer.id, "Gotowe ✅", "complete")

    assert finished is not None
    message, updated = finished
    assert message.id == answer.id
    assert (message.content, message.status, message.role) == ("Gotowe ✅", "complete", "assistant")
    assert message.created_at == answer.created_at
    assert updated.id == conversation.id
    assert updated.last_message_at is not None
    assert updated.last_message_at > after_add.last_message_at  # type: ignore[operator]
    assert updated.updated_at == updated.last_message_at
    assert repo.get_conversation(alice.id, conversation.id) == updated
    assert repo.list_messages(alice.id, conversation.id, 10, None) == ([message], False)

    cancelled = finish_one(repo, alice.id, answer.id, "Gotowe", "cancelled")
    assert cancelled is not None
    assert cancelled[0].status == "cancelled"
    assert finish_one(repo, alice.id, "no-such-id", "x", "complete") is None


def test_list_messages_pages_oldest_first(repo: SqlRepository, alice: User) -> None:
    conversation = repo.create_conversation(alice.id, "chat")
    other = repo.create_conversation(alice.id, "other")
    sent = [_message(repo, alice, conversation, f"m{n}") for n in range(5)]
    elsewhere = _message(repo, alice, other, "elsewhere")

    assert repo.list_messages(alice.id, conversation.id, 10, None) == (sent, False)
    assert repo.list_messages(alice.id, conversation.id, 5, None) == (sent, False)
    assert repo.list_messages(alice.id, conversation.id, 2, None) == (sent[3:], True)
    assert repo.list_messages(alice.id, conversation.id, 2, sent[3].id) == (sent[1:3], True)
    assert repo.list_messages(alice.id, conversation.id, 2, sent[1].id) == (sent[:1], False)
    assert repo.list_messages(alice.id, conversation.id, 2, sent[0].id) == ([], False)
    assert repo.list_messages(alice.id, conversation.id, 10, "no-such-id") is None
    assert repo.list_messages(alice.id, conversation.id, 10, elsewhere.id) is None
    assert repo.list_messages(alice.id, "no-such-id", 10, None) is None
    assert repo.list_messages(alice.id, other.id, 10, None) == ([elsewhere], False)


def test_messages_keep_order_when_created_in_the_same_instant(
    repo: SqlRepository, alice: User
) -> None:
    conversation = repo.create_conversation(alice.id, "chat")
    now = datetime(2030, 1, 2, 3, 4, 5, 678901)
    ids = [f"00000000-0000-0000-0000-00000000000{n}" for n in (9, 3, 7, 1)]
    with repo.engine.begin() as connection:
        for message_id in ids:
            connection.execute(
                tables.messages.insert().values(
                    id=message_id,
                    conversation_id=conversation.id,
                    user_id=alice.id,
                    role="user",
                    content=message_id,
                    created_at=now,
                    is_audio=False,
                    status="complete",
                )
            )
    listed = repo.list_messages(alice.id, conversation.id, 10, None)
    assert listed is not None
    assert [m.id for m in listed[0]] == ids
    assert listed[0][0].created_at == now.replace(tzinfo=UTC)
    page = repo.list_messages(alice.id, conversation.id, 10, ids[2])
    assert page is not None
    assert [m.id for m in page[0]] == ids[:2]


def test_long_unicode_content_round_trips(repo: SqlRepository, alice: User) -> None:
    conversation = repo.create_conversation(alice.id, "long")
    content = ("Zażółć gęślą jaźń 🦊🎉 ąęśćżźńłó " * 1200)[:32_000]
    assert len(content) == 32_000

    added = repo.add_message(alice.id, conversation.id, "assistant", content, "streaming")
    assert added is not None
    listed = repo.list_messages(alice.id, conversation.id, 1, None)
    assert listed is not None
    assert listed[0][0].content == content

    finished = finish_one(repo, alice.id, added[0].id, content[::-1], "complete")
    assert finished is not None
    listed = repo.list_messages(alice.id, conversation.id, 1, None)
    assert listed is not None
    assert listed[0][0].content == content[::-1]


def test_interrupt_streaming(repo: SqlRepository, alice: User, bob: User) -> None:
    mine = repo.create_conversation(alice.id, "mine")
    theirs = repo.create_conversation(bob.id, "theirs")
    streaming = [
        _message(repo, alice, mine, "half an ans", status="streaming"),
        _message(repo, bob, theirs, "another", status="streaming"),
    ]
    done = _message(repo, alice, mine, "done", status="complete")
    failed = _message(repo, alice, mine, "failed", status="error")

    assert repo.interrupt_streaming() == 2
    assert repo.interrupt_streaming() == 0

    listed = repo.list_messages(alice.id, mine.id, 10, None)
    assert listed is not None
    statuses = {m.id: (m.status, m.content) for m in listed[0]}
    assert statuses == {
        streaming[0].id: ("interrupted", "half an ans"),
        done.id: ("complete", "done"),
        failed.id: ("error", "failed"),
    }
    listed = repo.list_messages(bob.id, theirs.id, 10, None)
    assert listed is not None
    assert [m.status for m in listed[0]] == ["interrupted"]


# --------------------------------------------------------------- settings


def test_settings_default_then_upsert(
    repo: SqlRepository, alice: User, bob: User, default_settings: Settings
) -> None:
    assert repo.get_settings(alice.id) == default_settings

    first = Settings(
        selected_model="gpt-3.5",
        voice_settings=VoiceSettings(gender="male", accent="polish", speed=1.25),
        assistant_personality="Mów po polsku, zwięźle. 🇵🇱",
    )
    assert repo.save_settings(alice.id, first) == first
    assert repo.get_settings(alice.id) == first

    second = Settings(
        selected_model="gpt-4",
        voice_settings=VoiceSettings(gender="female", accent="british", speed=0.5),
        assistant_personality="x" * 4000,
    )
    assert repo.save_settings(alice.id, second) == second
    assert repo.get_settings(alice.id) == second
    assert repo.get_settings(bob.id) == default_settings
    with repo.engine.connect() as connection:
        rows = connection.execute(sa.select(sa.func.count()).select_from(tables.user_settings))
        assert rows.scalar_one() == 1


def test_ping_answers_while_the_database_does_and_fails_when_it_does_not(
    repo: SqlRepository, default_settings: Settings, tmp_path: Path
) -> None:
    assert repo.ping() is None
    unreachable = {
        "sqlite": f"sqlite:///{tmp_path / 'no-such-folder' / 'pichat.db'}",
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/test?connect_timeout=2",
    }[repo.engine.dialect.name]
    gone = SqlRepository(create_engine(unreachable, pool_size=1), default_settings)
    if repo.engine.dialect.name == "sqlite":  # the engine makes its folder: take it away
        (tmp_path / "no-such-folder").rmdir()
    # A refused connection is a transient fault (retried, then Unavailable); SQLite's
    # missing folder is not.
    expected = Unavailable if repo.engine.dialect.name == "postgresql" else sa.exc.OperationalError
    try:
        with pytest.raises(expected):
            gone.ping()
    finally:
        gone.engine.dispose()


def test_start_exchanges_is_one_round_trip_for_a_message(
    repo: SqlRepository, alice: User, bob: User
) -> None:
    conversation = repo.create_conversation(alice.id, "Untitled")
    earlier = repo.add_message(alice.id, conversation.id, "user", "before", "complete")
    assert earlier is not None
    repo.save_settings(
        alice.id,
        Settings(
            selected_model="gpt-3.5",
            voice_settings=VoiceSettings(),
            assistant_personality="Be brief.",
        ),
    )

    [exchange] = repo.start_exchanges(
        [
            ExchangeRequest(
                alice.id, conversation.id, POLISH, True, "k.wav", ("Untitled", "Named"), 10
            )
        ]
    )

    assert exchange is not None
    assert (exchange.user_message.role, exchange.user_message.content) == ("user", POLISH)
    assert (exchange.user_message.is_audio, exchange.user_message.audio_file) == (True, "k.wav")
    assert (exchange.answer.role, exchange.answer.content) == ("assistant", "")
    assert exchange.answer.status == "streaming"
    assert exchange.conversation.title == "Named"
    assert exchange.conversation.last_message_at == exchange.user_message.created_at
    assert exchange.settings.assistant_personality == "Be brief."
    # The history ends with the question and does not hold the answer being written.
    assert [m.content for m in exchange.history] == ["before", POLISH]
    stored, _ = repo.list_messages(alice.id, conversation.id, 10, None) or ([], False)
    assert [m.id for m in stored] == [
        earlier[0].id,
        exchange.user_message.id,
        exchange.answer.id,
    ]
    # A title that is not the default stays; another user's conversation is not found.
    [again] = repo.start_exchanges(
        [ExchangeRequest(alice.id, conversation.id, "x", retitle=("Untitled", "Z"), history_rows=1)]
    )
    assert again is not None and again.conversation.title == "Named"
    assert [m.content for m in again.history] == ["x"]
    assert repo.start_exchanges([ExchangeRequest(bob.id, conversation.id, "x")]) == [None]


def test_a_conversation_without_messages_needs_no_history_query(
    repo: SqlRepository, alice: User
) -> None:
    fresh = [repo.create_conversation(alice.id, "New") for _ in range(3)]
    used = repo.create_conversation(alice.id, "Used")
    assert repo.add_message(alice.id, used.id, "user", "before", "complete") is not None
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    sa.event.listen(repo.engine, "before_cursor_execute", seen)
    try:
        exchanges = repo.start_exchanges(
            [ExchangeRequest(alice.id, c.id, f"q{i}") for i, c in enumerate([*fresh, used])]
        )
    finally:
        sa.event.remove(repo.engine, "before_cursor_execute", seen)
    assert [[m.content for m in e.history] for e in exchanges if e is not None] == [
        ["q0"],
        ["q1"],
        ["q2"],
        ["before", "q3"],
    ]
    assert sum("ORDER BY messages.seq DESC" in s for s in statements) == 1  # the used one's


def test_an_in_memory_sqlite_database_works_across_threads() -> None:
    import threading

    from pichat_trio.adapters.sql.engine import create_engine
    from pichat_trio.adapters.sql.migrate import upgrade

    engine = create_engine("sqlite://", pool_size=4)
    upgrade(engine)
    repo = SqlRepository(engine, Settings("gpt-4", VoiceSettings(), ""))
    [(user, token)] = repo.add_users(["carol"])
    found: list[User | None] = []
    worker = threading.Thread(target=lambda: found.append(repo.user_for_token(token)))
    worker.start()
    worker.join()
    assert found == [user]
    engine.dispose()


def test_sqlite_writers_of_one_process_wait_for_each_other_not_for_sqlite(
    tmp_path: Path,
) -> None:
    """With SQLite's busy handler off, writers that meet would fail with "database is
    locked"; the repository queues them itself, so eight threads writing at once
    all succeed."""
    engine = create_engine(f"sqlite:///{tmp_path / 'writers.db'}", pool_size=8)
    sa.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout=0"))
    migrate.upgrade(engine)
    repo = SqlRepository(engine, Settings("gpt-4", VoiceSettings(), "Be brief."))
    user = repo.ensure_user("writer", "writer-token-0123456789")
    exchanges = repo.start_exchanges(
        [
            ExchangeRequest(user.id, repo.create_conversation(user.id, "New").id, f"q{i}")
            for i in range(8)
        ]
    )
    failures: list[BaseException] = []

    def write(i: int) -> None:
        answer = exchanges[i]
        assert answer is not None
        try:
            for n in range(20):
                repo.checkpoint_messages([(user.id, answer.answer.id, "x" * n)])
            repo.finish_messages([FinishRequest(user.id, answer.answer.id, "done", "complete")])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert failures == []
