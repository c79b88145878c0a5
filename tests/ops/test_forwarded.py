"""X-Forwarded-For/-Proto: believed from FORWARDED_ALLOW_IPS, ignored from anyone else."""

from __future__ import annotations

import logging

import httpx
import pytest
from support import make_settings, run_server

from pichat_trio.settings import SettingsError, load_settings
from pichat_trio.transport.forwarded import TrustedProxies

HEADERS = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9", "X-Forwarded-Proto": "https"}


def _scope(peer: str, headers: dict[str, str], kind: str = "http") -> dict[str, object]:
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": (peer, 50000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_a_trusted_proxy_names_the_client_and_the_scheme():
    scope = _scope("10.0.0.5", HEADERS)
    TrustedProxies(["10.0.0.0/8"]).apply(scope)
    assert scope["client"] == ("203.0.113.9", 0) and scope["scheme"] == "https"
    websocket = _scope("10.0.0.5", HEADERS, "websocket")
    TrustedProxies(["10.0.0.0/8"]).apply(websocket)
    assert websocket["scheme"] == "wss"


def test_the_client_is_the_last_hop_no_trusted_proxy_wrote():
    scope = _scope("10.0.0.5", {"X-Forwarded-For": "6.6.6.6, 198.51.100.7, 10.0.0.9"})
    TrustedProxies(["10.0.0.0/8"]).apply(scope)
    assert scope["client"] == ("198.51.100.7", 0)  # not the 6.6.6.6 the client wrote
    everyone = _scope("10.0.0.5", {"X-Forwarded-For": "[2001:db8::1]:443, 10.0.0.9:80"})
    TrustedProxies(["*"]).apply(everyone)
    assert everyone["client"] == ("2001:db8::1", 0)


def test_an_untrusted_peer_s_headers_change_nothing():
    scope = _scope("192.0.2.1", HEADERS)
    TrustedProxies(["10.0.0.0/8"]).apply(scope)
    assert scope["client"] == ("192.0.2.1", 50000) and scope["scheme"] == "http"
    assert not TrustedProxies([])


def test_a_wrong_entry_names_the_variable():
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        load_settings({"FORWARDED_ALLOW_IPS": "10.0.0.0/8,localhost"}, env_file=None)


@pytest.mark.parametrize(
    ("allow", "seen"), [("127.0.0.1", "203.0.113.9"), ("10.0.0.1", "127.0.0.1")]
)
async def test_the_access_log_shows_whom_the_proxy_served(tmp_path, caplog, allow, seen):
    caplog.set_level(logging.INFO, logger="hypercorn.access")
    settings = make_settings(tmp_path, {"FORWARDED_ALLOW_IPS": allow})
    async with run_server(settings) as server, httpx.AsyncClient() as http:
        assert (await http.get(f"{server.http_url}/healthz", headers=HEADERS)).status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "hypercorn.access"]
    assert any(line.startswith(f"{seen}:") and "/healthz" in line for line in lines), lines
