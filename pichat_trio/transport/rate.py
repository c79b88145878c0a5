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

    Within the budget a frame is ``ADMIT``. The first frame past it is
    ``REFUSE`` (answered with ``rate_limited``); the ones that follow are
    ``DROP``: not answered, not even parsed, so a flood of frames costs the
    server no more than reading them. A client that keeps sending past its
    budget for ``grace`` seconds gets ``CLOSE`` (1008, policy violation).
    A frame within the budget that comes at least one token's time
    (``1 / rate``) after the last dropped one ends the episode: the client
    slowed down (as ``retry_after_ms`` told it), and the next frame past the
    budget is answered again. A flood never pauses that long, so it cannot
    reset its episode with the frames the refill lets through.
    """

    ADMIT = 0
    REFUSE = 1
    DROP = 2
    CLOSE = 3

    __slots__ = ("_bucket", "_grace", "_interval", "_last_drop", "_since", "retry_after")

    def __init__(self, rate: float, burst: float, grace: float) -> None:
        self._bucket = TokenBucket(rate, burst)
        self._grace = grace
        self._interval = 1 / rate
        self._since: float | None = None  # when the client first went past its budget
        self._last_drop = 0.0
        self.retry_after = 0.0
        """Seconds until the next frame fits, as of the last ``REFUSE``."""

    def take(self, now: float) -> int:
        wait = self._bucket.take(now)
        since = self._since
        if wait == 0:
            if since is not None and now - self._last_drop >= self._interval:
                self._since = None  # it slowed down
            return self.ADMIT
        if since is None:
            self._since = self._last_drop = now
            self.retry_after = wait
            return self.REFUSE
        self._last_drop = now
        return self.CLOSE if now - since > self._grace else self.DROP
