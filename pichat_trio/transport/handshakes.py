"""Failed handshakes, throttled per client address.

A wrong token costs the server a database lookup; a client guessing
tokens (or a device stuck with a revoked one) could make hundreds a
second and slow down everyone's handshakes. Each client address gets a
budget of failures (``AUTH_FAILURES_BURST``, refilled at
``AUTH_FAILURES_PER_MINUTE``); past it, every handshake from that address
is refused with HTTP 429 before any lookup, until the budget refills.

The address is the ASGI ``client`` of the request (``client_address``).
Behind a reverse proxy that is the proxy's own address, unless a
middleware that trusts the proxy (its ``X-Forwarded-For``, from the
addresses the deployment allows) has put the real client there: this
module takes whatever the scope says, and trusts no header itself.

Memory bound: at most ``max_addresses`` addresses are tracked (default
10,000, about 1 MB); past that the one not seen for longest is forgotten,
which can only make the throttle more lenient, never refuse anyone else.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

__all__ = ["FailedHandshakes", "client_address"]


def client_address(scope: dict[str, Any]) -> str:
    """The client's address as the ASGI server (or a proxy-fixing middleware) saw it."""
    client = scope.get("client")
    return str(client[0]) if client else ""


class FailedHandshakes:
    __slots__ = ("_addresses", "_burst", "_max", "_rate")

    def __init__(self, burst: float, per_minute: float, max_addresses: int = 10_000) -> None:
        self._burst = burst
        self._rate = per_minute / 60.0
        self._max = max_addresses
        self._addresses: OrderedDict[str, tuple[float, float]] = OrderedDict()
        """address -> (failures left, when counted), the least recently seen first."""

    def _left(self, address: str, now: float) -> float:
        entry = self._addresses.get(address)
        if entry is None:
            return self._burst
        left, at = entry
        return min(self._burst, left + (now - at) * self._rate)

    def refused(self, address: str, now: float) -> bool:
        """Whether ``address`` has used up its failures: then refuse it unheard."""
        return self._left(address, now) < 1

    def failed(self, address: str, now: float) -> None:
        """Count a failed handshake from ``address``."""
        addresses = self._addresses
        left = self._left(address, now) - 1
        addresses[address] = (max(left, 0.0), now)
        addresses.move_to_end(address)
        if len(addresses) > self._max:
            addresses.popitem(last=False)
