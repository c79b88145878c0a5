"""Blocking repository calls, run in trio threads behind a capacity limiter.

The limiter has as many tokens as the pool has connections, so a burst of
requests queues in trio (cheap, cancellable) rather than in the pool (a
blocked thread each).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio

from ..ports import Repository

__all__ = ["Database"]

T = TypeVar("T")


class Database:
    def __init__(self, repository: Repository, threads: int) -> None:
        self.repository = repository
        self._limiter = trio.CapacityLimiter(threads)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (a repository method) in a worker thread."""
        return await trio.to_thread.run_sync(partial(fn, *args, **kwargs), limiter=self._limiter)
