"""Turns at the shared recogniser: round robin between owners, FIFO within one,
a bounded queue per owner, cancellation. Pure trio; a turn's work is a sleep."""

from __future__ import annotations

import pytest
import trio

from pichat_trio.adapters.speech.turns import Turns
from pichat_trio.errors import RateLimited


async def _job(turns: Turns, owner: str, name: str, chunks: int, log: list[str]) -> None:
    async with turns.job(owner):
        for _ in range(chunks):
            async with turns.turn(owner):
                log.append(name)
                await trio.sleep(1)
    log.append(f"{name} done")


async def test_owners_take_turns_and_one_owners_jobs_run_in_order(autojump_clock) -> None:
    turns = Turns(jobs_per_owner=4)
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(_job, turns, "alice", f"a{n}", 3, log)
            await turns.wait_until(lambda n=n: turns.jobs("alice") == n + 1)
        await turns.wait_until(lambda: turns.holder == "alice")
        nursery.start_soon(_job, turns, "bob", "b", 2, log)
    assert log[:6] == ["a0", "b", "a0", "b", "b done", "a0"]
    assert [entry for entry in log if entry.startswith("a")] == (
        ["a0"] * 3 + ["a0 done"] + ["a1"] * 3 + ["a1 done"] + ["a2"] * 3 + ["a2 done"]
    )


async def test_a_queue_past_its_bound_is_rate_limited(autojump_clock) -> None:
    turns = Turns(jobs_per_owner=2)
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_job, turns, "alice", "a0", 5, log)
        nursery.start_soon(_job, turns, "alice", "a1", 5, log)
        await turns.wait_until(lambda: turns.jobs("alice") == 2)
        with pytest.raises(RateLimited) as refused:
            async with turns.job("alice"):
                pass
        assert refused.value.retry_after_ms > 0
        async with turns.job("bob"), turns.turn("bob"):  # another owner is not affected
            log.append("b")
    assert "b" in log[:2]
    assert turns.jobs("alice") == 0 and turns.holder is None and turns.waiting == ()


async def test_a_cancelled_waiter_leaves_the_queue_and_the_turn_goes_on(autojump_clock) -> None:
    turns = Turns(jobs_per_owner=4)
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_job, turns, "alice", "a", 3, log)
        await turns.wait_until(lambda: turns.holder == "alice")
        with trio.CancelScope() as waiting:
            nursery.start_soon(_cancel_when_queued, turns, waiting)
            async with turns.turn("bob"):
                log.append("never")
        assert waiting.cancelled_caught and "bob" not in turns.waiting
        nursery.start_soon(_job, turns, "carol", "c", 1, log)
    assert "never" not in log and log.index("c") == 1


async def _cancel_when_queued(turns: Turns, scope: trio.CancelScope) -> None:
    await turns.wait_until(lambda: "bob" in turns.waiting)
    scope.cancel()
