"""Which conversations are generating: one answer per conversation, a cap per user.

Keyed by (user id, conversation id): whether a conversation is generating
is only ever looked up among the requester's own, so another user's id is
``not_found`` like an unknown one, never ``busy``.

With several instances (``Leases``, a Redis backplane) a reservation also
takes the conversation's lease, so the conversation is one answer across
all of them; the lease goes with the reservation.
"""

from __future__ import annotations

from collections.abc import Iterator

import trio
from trio_util import AsyncValue

from ..errors import Busy
from ..ports import Leases
from .generation import Generation

__all__ = ["CLEANUP_SECONDS", "Reservations"]

CLEANUP_SECONDS = 5.0  # bound on the shielded writes after a generation ends


class Reservations:
    def __init__(self, max_per_user: int = 0, leases: Leases | None = None) -> None:
        self._leases = leases
        self._active: dict[tuple[str, str], Generation] = {}
        self._per_user: dict[str, int] = {}  # generations running, by user id
        self._max_per_user = max_per_user  # 0: no cap
        self._running = AsyncValue(0)  # len(_active), for ``wait_idle`` (shutdown)

    def __len__(self) -> int:
        return len(self._active)

    def __iter__(self) -> Iterator[Generation]:
        return iter(list(self._active.values()))

    def get(self, user_id: str, conversation_id: str) -> Generation | None:
        return self._active.get((user_id, conversation_id))

    async def wait_turn(self, key: tuple[str, str]) -> None:
        """Raise ``Busy`` while the conversation is generating, or while its user
        runs ``max_per_user`` answers (``MAX_GENERATIONS_PER_USER``).

        An answer whose final frame has gone out is only being stored: a
        client may well send the next message at once, and it waits for that
        write (bounded by the cleanup deadline) rather than being refused.
        """
        current = self._active.get(key)
        if current is not None and current.ended:
            with trio.move_on_after(CLEANUP_SECONDS):
                await current.released.wait()
        if key in self._active:
            raise Busy("an answer is still being generated in this conversation")
        if self._max_per_user and self._per_user.get(key[0], 0) >= self._max_per_user:
            raise Busy(f"at most {self._max_per_user} answers at once for one user")

    def reserve(self, generation: Generation) -> None:
        self._active[generation.key] = generation
        user_id = generation.user_id
        self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        self._running.value = len(self._active)

    async def claim(self, generation: Generation) -> None:
        """Take the lease of a reserved conversation across instances; ``Busy`` (and the
        reservation released) while another instance answers in it."""
        if self._leases is None:
            return
        try:
            taken = await self._leases.acquire(*generation.key)
        except BaseException:
            self.release(generation)
            raise
        if not taken:
            self.release(generation)
            raise Busy("an answer is still being generated in this conversation")

    def release(self, generation: Generation) -> None:
        key = generation.key
        if self._active.get(key) is generation:
            del self._active[key]
            if self._leases is not None:
                self._leases.release(*key)
            user_id = generation.user_id
            left = self._per_user[user_id] - 1
            if left:
                self._per_user[user_id] = left
            else:
                del self._per_user[user_id]
        self._running.value = len(self._active)
        generation.released.set()

    async def wait_idle(self) -> None:
        """Wait until no answer is being generated."""
        await self._running.wait_value(0)
