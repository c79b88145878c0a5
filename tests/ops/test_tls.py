"""https:// and wss:// served by the server itself, with a certificate from trustme."""

from __future__ import annotations

import ssl

import httpx
import pytest
import trio
import trustme
from support import make_settings, run_server

from pichat_trio.client import open_client


async def test_wss_ping_and_https_healthz(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    settings = make_settings(tmp_path, {"TLS_CERTFILE": str(certfile), "TLS_KEYFILE": str(keyfile)})
    client_context = ssl.create_default_context(cafile=str(cafile))
    async with run_server(settings) as server:
        assert server.http_url.startswith("https://127.0.0.1:")
        assert server.url.startswith("wss://127.0.0.1:")
        with trio.fail_after(10):
            async with open_client(server.url, server.token, ssl_context=client_context) as client:
                pong = await client.call("ping")
                assert pong["action"] == "pong"
                conversation = await client.call("create_conversation", {"title": "over TLS"})
                assert conversation["payload"]["title"] == "over TLS"
            async with httpx.AsyncClient(verify=client_context) as http:
                health = await http.get(f"{server.http_url}/healthz")
                assert health.status_code == 200 and health.json() == {"status": "ok"}
                assert health.http_version == "HTTP/1.1"
            # A client that does not trust the CA is refused by TLS itself.
            async with httpx.AsyncClient(verify=True) as untrusting:
                with pytest.raises(httpx.ConnectError) as refused:
                    await untrusting.get(f"{server.http_url}/healthz")
    causes = []
    error: BaseException | None = refused.value
    while error is not None:
        causes.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(cause, ssl.SSLCertVerificationError) for cause in causes)
