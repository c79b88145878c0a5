"""Revoked tokens end their users' live connections, whoever revoked them.

``pichat users revoke NAME`` is another process (and, scaled out, maybe on
another machine): it only writes the user's row. One task per server
instance reads the rows of the users connected to it every
``interval`` seconds (one query for up to 500 users, whatever the number
of their connections) and calls ``on_revoked(user_id)`` for each one
whose token no longer holds. Every instance watches for itself, so a
revocation reaches every instance from the database; a backplane could
call ``on_revoked`` sooner, the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from contextlib import aclosing

from trio_util import periodic

from .db import Database

__all__ = ["RevocationWatch"]

log = logging.getLogger(__name__)


class RevocationWatch:
    def __init__(
        self,
        db: Database,
        connected: Callable[[], Collection[str]],
        on_revoked: Callable[[str], None],
        interval: float = 0.5,
    ) -> None:
        self._db = db
        self._connected = connected
        self._on_revoked = on_revoked
        self.interval = interval
        self._failing = False  # the last check failed: said once, not every interval

    async def run(self) -> None:
        """Check every ``interval`` until cancelled (a slow check shortens the next
        wait, as ``periodic`` keeps the pace); a failed check is retried."""
        async with aclosing(periodic(self.interval)) as ticks:
            async for _ in ticks:
                await self.check()

    async def check(self) -> None:
        user_ids = list(self._connected())
        if not user_ids:
            return
        try:
            revoked = await self._db.run(self._db.repository.revoked_among, user_ids)
        except Exception as exc:
            if not self._failing:
                log.warning(
                    "revocation check failed (%s); retrying every %.1f s", exc, self.interval
                )
            self._failing = True
            return
        if self._failing:
            log.info("revocation check works again")
            self._failing = False
        for user_id in revoked:
            self._on_revoked(user_id)
