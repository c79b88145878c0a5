"""The per-frame budget, driven with explicit times (it keeps no clock of its own)."""

from __future__ import annotations

from collections import Counter

from pichat_trio.transport.rate import FrameBudget

ADMIT, REFUSE = FrameBudget.ADMIT, FrameBudget.REFUSE
DROP, CLOSE = FrameBudget.DROP, FrameBudget.CLOSE


def test_a_flood_is_answered_at_most_at_the_rate_then_closed():
    budget = FrameBudget(rate=30, burst=60, grace=10)
    verdicts = []
    now = 0.0
    while not verdicts or verdicts[-1] != CLOSE:
        verdicts.append(budget.take(now))
        now += 0.001  # 1,000 frames a second
    counts = Counter(verdicts)
    first = verdicts.index(REFUSE)
    assert set(verdicts[:first]) == {ADMIT} and first >= 60
    # After the burst: about one frame taken and one refusal per token's time
    # (1/30 s), everything else dropped unread.
    assert abs(counts[ADMIT] - (60 + 30 * now)) <= 2
    assert abs(counts[REFUSE] - 30 * now) <= 2
    assert counts[DROP] > 9_000
    assert 10.0 < now - (first + 1) * 0.001 <= 10.002  # closed once the grace had passed


def test_a_client_that_waits_as_told_is_always_answered_and_never_closed():
    budget = FrameBudget(rate=10, burst=2, grace=1)
    now = 0.0
    answered = Counter()
    while now < 30:  # a client sending the next request as soon as it is allowed to
        verdict = budget.take(now)
        assert verdict in (ADMIT, REFUSE)
        answered[verdict] += 1
        # retry_after_ms as the connection sends it: whole milliseconds, rounded up
        now += (int(budget.retry_after * 1000) + 1) / 1000 if verdict == REFUSE else 0.0005
    assert answered[ADMIT] >= 290  # the rate: 10 a second


def test_frames_during_a_wait_are_dropped_and_one_wait_kept_ends_the_run():
    budget = FrameBudget(rate=10, burst=2, grace=5)
    assert [budget.take(0.0) for _ in range(3)] == [ADMIT, ADMIT, REFUSE]
    assert budget.take(0.01) == DROP  # one already in flight: not answered
    later = (int(budget.retry_after * 1000) + 1) / 1000
    assert budget.take(later) == ADMIT
    assert budget.take(later) == REFUSE  # answered, not dropped
    assert budget.take(later + 20) == ADMIT  # that wait was kept: nothing ever closes it
    budget = FrameBudget(rate=10, burst=1, grace=0.5)
    now = 0.0
    while budget.take(now) != CLOSE:  # 100 frames a second, waits never kept
        now += 0.01
    assert 0.5 < now <= 0.7  # the grace, and at most one wait more
