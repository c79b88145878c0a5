"""Users and their access tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence

import sqlalchemy as sa

from ...models import User
from .dialects import batches
from .rows import now_utc
from .store import SqlStore, read
from .tables import users

__all__ = ["UserStore", "hash_token"]


def hash_token(token: str) -> str:
    """Tokens are random 256-bit strings, so one SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


_IDS_PER_QUERY = 500  # bound parameters per IN list: SQL Server takes at most 2,100


class UserStore(SqlStore):
    """Users: created, found by token, listed, revoked."""

    def add_users(self, names: Sequence[str]) -> list[tuple[User, str]]:
        """Create users in one transaction; each gets a fresh token, returned once."""
        created: list[tuple[User, str]] = []
        rows = []
        now = now_utc()
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

    @read
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
                        id=user_id, name=name, token_hash=digest, created_at=now_utc()
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

    @read
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
                .values(revoked_at=now_utc())
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
