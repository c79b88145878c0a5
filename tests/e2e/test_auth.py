"""Handshake checks over real sockets: token, origin, health endpoints."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from support import handshake_status as _status
from support import make_settings, run_server

from pichat_trio.client import open_client


async def test_missing_token_is_refused_before_upgrade(server):
    assert await _status(server.url + "/ws") == 401


async def test_wrong_token_in_query_or_header_is_refused(server):
    assert await _status(server.url + "/ws?token=wrong-token-000000") == 401
    headers = [("Authorization", "Bearer wrong-token-000000")]
    assert await _status(server.url + "/ws", headers) == 401


async def test_token_in_query_or_header_is_accepted(server):
    async with server.client() as client:
        assert (await client.call("ping"))["action"] == "pong"
    async with server.client(use_header=True) as client:
        assert (await client.call("ping"))["action"] == "pong"


async def test_unknown_path_is_not_found(server):
    assert await _status(server.url + f"/other?token={server.token}") == 404


async def test_origin_not_listed_is_forbidden(tmp_path):
    settings = make_settings(tmp_path, {"ALLOWED_ORIGINS": "https://app.example"})
    async with run_server(settings) as running:
        url = f"{running.url}/ws?token={running.token}"
        assert await _status(url, [("Origin", "https://evil.example")]) == 403
        assert await _status(url, [("Origin", "https://app.example")]) == 101
        assert await _status(url) == 101  # not a browser: no Origin header


async def test_health_and_readiness(server):
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}
        assert (await http.get("/nope")).status_code == 404


async def test_readiness_fails_when_database_is_gone(server):
    repository = server.app.db.repository
    working = repository.engine
    repository.engine = sa.create_engine("sqlite:////nonexistent/dir/pichat.db")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    repository.engine = working
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        assert (await http.get("/readyz")).status_code == 200


@pytest.mark.parametrize("use_header", [False, True])
async def test_token_never_reaches_the_log(tmp_path, caplog, use_header):
    import logging

    from pichat_trio.logs import RedactingFilter

    settings = make_settings(tmp_path)
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter([settings.api_token]))
    async with run_server(settings) as running:
        async with open_client(running.url, running.token, use_header=use_header) as client:
            await client.call("ping")
        await _status(running.url + "/ws?token=bad-token-1234567890")
    text = caplog.text
    assert "/ws" in text  # the access log did record the handshakes
    assert running.token not in text
    assert "bad-token-1234567890" not in text


async def test_failed_handshakes_are_throttled_per_client_address(tmp_path):
    # Almost no refill within the test: the burst is all an address gets.
    env = {"AUTH_FAILURES_BURST": "3", "AUTH_FAILURES_PER_MINUTE": "0.01"}
    async with run_server(make_settings(tmp_path, env)) as server:
        wrong = server.url + "/ws?token=wrong-token-0123456789"
        right = server.url + f"/ws?token={server.token}"
        assert [await _status(wrong, source="127.0.0.1") for _ in range(3)] == [401] * 3
        # Past its budget the address is refused unheard, even with the right token ...
        assert await _status(wrong, source="127.0.0.1") == 429
        assert await _status(right, source="127.0.0.1") == 429
        # ... and another address is not.
        assert await _status(right, source="127.0.0.2") == 101
        assert await _status(wrong, source="127.0.0.2") == 401


async def test_a_wrong_token_is_looked_up_once_while_it_is_remembered(tmp_path):
    async with run_server(make_settings(tmp_path)) as server:
        lookups: list[str] = []
        auth = server.app.auth
        lookup = auth._lookup

        async def counted(token: str):
            lookups.append(token)
            return await lookup(token)

        auth._lookup = counted
        wrong = server.url + "/ws?token=wrong-token-0123456789"
        assert [await _status(wrong) for _ in range(5)] == [401] * 5
        assert lookups == ["wrong-token-0123456789"]
        other = server.url + "/ws?token=another-wrong-token-42"
        assert await _status(other) == 401
        assert len(lookups) == 2
