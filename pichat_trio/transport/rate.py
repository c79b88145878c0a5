"""Request budgets: a token bucket, and the per-frame budget of a connection built on it."""

from __future__ import annotations

__all__ = ["FrameBudget", "TokenBucket"]


class TokenBucket:
    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at: float | None = None

    def take(self, now: float) -> float:
        """Take one token; returns 0, or the seconds to wait when none is left."""
        if self._at is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate


class FrameBudget:
    """Every frame a connection receives, text or binary, against its request rate.

    Within the budget a frame is ``ADMIT``. A frame past it is ``REFUSE``
    (answered with ``rate_limited`` and its ``retry_after_ms``); the frames
    that come before that time has passed are ``DROP``: not answered, not
    even parsed, so a flood costs the server little more than reading it.
    After the wait, frames are taken as before: a client that waits as told
    is never left without an answer. A client that keeps sending inside
    its waits, wait after wait, for ``grace`` seconds gets ``CLOSE`` (1008,
    policy violation); one wait it keeps ends that run.
    """

    ADMIT = 0
    REFUSE = 1
    DROP = 2
    CLOSE = 3

    __slots__ = ("_bucket", "_dropped", "_grace", "_since", "_until", "retry_after")

    def __init__(self, rate: float, burst: float, grace: float) -> None:
        self._bucket = TokenBucket(rate, burst)
        self._grace = grace
        self._until = -float("inf")  # the client was told to wait until then
        self._dropped = False  # a frame came during the current wait
        self._since: float | None = None  # the first frame of a run of waits not kept
        self.retry_after = 0.0
        """Seconds until the next frame fits, as of the last ``REFUSE``."""

    def take(self, now: float) -> int:
        if now < self._until:
            self._dropped = True
            if self._since is None:
                self._since = now
            return self.CLOSE if now - self._since > self._grace else self.DROP
        if not self._dropped:
            self._since = None  # the last wait was kept
        wait = self._bucket.take(now)
        if wait == 0:
            return self.ADMIT
        self._dropped = False
        self._until = now + wait
        self.retry_after = wait
        return self.REFUSE
