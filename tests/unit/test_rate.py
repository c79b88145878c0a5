"""The per-frame budget, driven with explicit times (it keeps no clock of its own)."""

from __future__ import annotations

from collections import Counter

from pichat_trio.transport.rate import FrameBudget

ADMIT, REFUSE, DROP, CLOSE = (
    FrameBudget.ADMIT,
    FrameBudget.REFUSE,
    FrameBudget.DROP,
    FrameBudget.CLOSE,
)


def test_a_flood_gets_one_refusal_then_silence_then_close_though_the_refill_lets_some_in():
    budget = FrameBudget(rate=30, burst=60, grace=10)
    verdicts = []
    now = 0.0
    while not verdicts or verdicts[-1] != CLOSE:
        verdicts.append(budget.take(now))
        now += 0.001  # 1,000 frames a second
    counts = Counter(verdicts)
    first = verdicts.index(REFUSE)
    assert set(verdicts[:first]) == {ADMIT} and first >= 60
    assert counts[REFUSE] == 1
    # What the refill let in meanwhile was admitted (and answered), nothing more.
    assert abs(counts[ADMIT] - (60 + 30 * now)) <= 2
    assert 10.0 < now - first * 0.001 <= 10.002  # closed once the grace had passed


def test_a_client_that_backs_off_as_told_is_answered_again():
    budget = FrameBudget(rate=10, burst=2, grace=5)
    assert [budget.take(0.0) for _ in range(3)] == [ADMIT, ADMIT, REFUSE]
    assert budget.take(0.001) == DROP  # one already in flight
    later = 0.001 + budget.retry_after
    assert budget.take(later) == ADMIT  # it waited retry_after: forgiven
    assert budget.take(later) == REFUSE  # so the next one past the budget is answered
    assert budget.take(later + 20) == ADMIT  # and, slowed down, nothing ever closes it
