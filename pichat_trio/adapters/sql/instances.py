"""Server instances in the database: who is alive, and the answers of those that are not.

Each instance has a row with a heartbeat; the answers it streams carry its
id (``messages.instance_id``). An instance that stops without draining (a
crash, SIGKILL, a lost container) leaves answers ``streaming``; ``sweep``
marks ``interrupted`` those whose instance has not beaten for ``timeout``
seconds, and never those of an instance still beating: two instances
behind one App Service share the database, and one starting up must not
cut off the other's answers.

With a single instance (no backplane) every earlier instance is gone by
definition, and the start-up sweep takes every answer that is not its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from .tables import instances, messages

__all__ = ["InstanceRegistry"]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class InstanceRegistry:
    """Blocking methods, for a trio thread (``Database.run``)."""

    def __init__(self, engine: sa.Engine, instance_id: str, timeout: float) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self.timeout = timedelta(seconds=timeout)

    def register(self) -> None:
        now = _now()
        with self.engine.begin() as connection:
            connection.execute(
                instances.insert().values(id=self.instance_id, started_at=now, heartbeat_at=now)
            )

    def beat(self) -> None:
        """This instance is alive (its row is written again if a sweep removed it)."""
        now = _now()
        with self.engine.begin() as connection:
            updated = connection.execute(
                instances.update()
                .where(instances.c.id == self.instance_id)
                .values(heartbeat_at=now)
            ).rowcount
            if not updated:
                connection.execute(
                    instances.insert().values(id=self.instance_id, started_at=now, heartbeat_at=now)
                )

    def sweep(self, *, alone: bool = False) -> int:
        """Mark ``interrupted`` the streaming answers of instances that are gone; how many.

        ``alone``: no other instance can be running, so every answer not this
        instance's is cut off, whatever its instance's last heartbeat said.
        """
        with self.engine.begin() as connection:
            if alone:
                gone = instances.c.id != self.instance_id
            else:
                gone = instances.c.heartbeat_at < _now() - self.timeout
            live = sa.select(instances.c.id).where(~gone)
            interrupted = connection.execute(
                messages.update()
                .where(
                    messages.c.status == "streaming",
                    sa.or_(messages.c.instance_id.is_(None), messages.c.instance_id.not_in(live)),
                )
                .values(status="interrupted")
            ).rowcount
            connection.execute(instances.delete().where(gone))
        return int(interrupted)

    def leave(self) -> None:
        """At a clean stop: this instance's row goes (its answers were finished)."""
        with self.engine.begin() as connection:
            connection.execute(instances.delete().where(instances.c.id == self.instance_id))
