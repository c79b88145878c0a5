"""``revoked_among``: which connected users' tokens no longer hold, on every dialect."""

from __future__ import annotations

import uuid

from pichat_trio.adapters.sql.repository import SqlRepository


def test_revoked_among_names_revoked_and_missing_users_only(repo: SqlRepository) -> None:
    created = dict((user.name, user) for user, _ in repo.add_users(["ann", "ben", "cy"]))
    ids = [created[name].id for name in ("ann", "ben", "cy")]
    assert repo.revoked_among(ids) == []
    assert repo.revoke_user("ben")
    gone = str(uuid.uuid4())  # a row that is not there holds no token either
    assert repo.revoked_among([*ids, gone]) == [created["ben"].id, gone]


def test_revoked_among_takes_more_ids_than_one_query_may_bind(repo: SqlRepository) -> None:
    users = [user for user, _ in repo.add_users([f"u{i}" for i in range(1200)])]
    assert repo.revoke_user("u1100")
    assert repo.revoked_among([user.id for user in users]) == [users[1100].id]
