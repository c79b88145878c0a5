"""This instance's heartbeat, and the sweep that finishes the answers of dead instances.

With several instances (a backplane), each beats every ``interval``
seconds and sweeps after each beat: the streaming answers of an instance
that stopped beating become ``interrupted`` within about ``timeout`` plus
one interval of its death, whichever instance sees it first. A failed beat
(the database away) is logged and tried again on the next one.
"""

from __future__ import annotations

import logging

import trio

from ..ports import Instances
from .db import Database

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, db: Database, instances: Instances, interval: float) -> None:
        self._db = db
        self._instances = instances
        self._interval = interval

    async def run(self) -> None:
        while True:
            await trio.sleep(self._interval)
            try:
                await self._db.run(self._instances.beat)
                swept = await self._db.run(self._instances.sweep)
            except Exception:
                log.warning("instance heartbeat failed; trying again", exc_info=True)
                continue
            if swept:
                log.warning("%d answers of a stopped instance marked interrupted", swept)
