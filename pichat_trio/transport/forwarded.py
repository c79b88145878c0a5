"""``X-Forwarded-For`` and ``X-Forwarded-Proto``, believed only from trusted proxies.

Behind App Service's front end (or any reverse proxy) the socket's peer is
the proxy; the client's address and whether it used TLS come in headers
that anyone could also send. They are applied to the ASGI scope only when
the peer is in ``FORWARDED_ALLOW_IPS``. The client is then the right-most
address of ``X-Forwarded-For`` that is not itself a trusted proxy, so a
client cannot name itself by sending a header of its own first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["TrustedProxies"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        entries = tuple(entries)
        self.everyone = "*" in entries
        self._networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"
        )

    def __bool__(self) -> bool:
        return self.everyone or bool(self._networks)

    def trusts(self, host: str) -> bool:
        if self.everyone:
            return True
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def apply(self, scope: dict[str, Any]) -> None:
        """Rewrite ``scope['client']`` and ``scope['scheme']`` from a trusted proxy's headers."""
        client = scope.get("client")
        if not client or not self.trusts(client[0]):
            return
        forwarded_for = proto = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1")
        if proto:
            secure = proto.split(",")[-1].strip().lower() in ("https", "wss")
            websocket = scope["type"] == "websocket"
            scope["scheme"] = (
                ("wss" if secure else "ws") if websocket else ("https" if secure else "http")
            )
        if forwarded_for:
            hops = [_host_of(hop.strip()) for hop in forwarded_for.split(",") if hop.strip()]
            if hops:
                untrusted = [hop for hop in hops if not self.trusts(hop)]
                scope["client"] = (untrusted[-1] if untrusted else hops[0], 0)


def _host_of(hop: str) -> str:
    """An address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80`` or ``::1``."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop
