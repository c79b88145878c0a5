"""GET /metrics over the real server, parsed by prometheus_client's own parser."""

from __future__ import annotations

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families
from support import ask, handshake_status, make_settings, run_server, run_with_fake_azure

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI

METRICS_TOKEN = "scraper-token-0123456789"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


async def _scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return _samples(response.text)


async def test_a_streamed_answer_moves_the_counters(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=12, rate=0))
    env = {"METRICS_TOKEN": METRICS_TOKEN}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _):  # noqa: SIM117
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            with trio.fail_after(20):
                before = await _scrape(http)
                assert before["pichat_connections", ()] == 0
                assert before.get(("pichat_tokens_streamed_total", ()), 0) == 0
                async with server.client() as client:
                    during = await _scrape(http)
                    assert during["pichat_connections", ()] == 1
                    answer = await ask(client, "Hello")
                    assert answer["final"]["finish_reason"] == "stop"
                    failed = await ask(client, "[fake:500:9] fail")
                    assert failed["final"]["finish_reason"] == "error"
                refused = await handshake_status(f"{server.url}/ws?token=wrong-token-0000000")
                assert refused == 401
                after = await _scrape(http)

    assert after["pichat_tokens_streamed_total", ()] == 12
    assert after["pichat_answers_total", (("finish_reason", "stop"),)] == 1
    assert after["pichat_answers_total", (("finish_reason", "error"),)] == 1
    assert after["pichat_upstream_errors_total", (("kind", "upstream_unavailable"),)] == 1
    assert after["pichat_time_to_first_token_seconds_count", ()] == 1
    assert after["pichat_upstream_seconds_count", ()] == 2
    assert after["pichat_handshakes_refused_total", (("reason", "token"),)] == 1
    assert after["pichat_db_call_seconds_count", ()] > before["pichat_db_call_seconds_count", ()]
    assert after["pichat_generations_active", ()] == 0
    assert after["pichat_connections", ()] == 0
    assert after["process_resident_memory_bytes", ()] > 0
    assert ("pichat_outbox_stalls_total", ()) in after


async def test_metrics_need_the_token_when_one_is_set(tmp_path):
    settings = make_settings(tmp_path, {"METRICS_TOKEN": METRICS_TOKEN})
    async with run_server(settings) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        api = await http.get("/metrics", headers={"Authorization": f"Bearer {server.token}"})
        assert api.status_code == 401  # a user's token is not the scraper's
        assert (await _scrape(http))["pichat_connections", ()] == 0


async def test_metrics_are_open_without_a_token(server):
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert ("pichat_generations_active", ()) in _samples(response.text)
