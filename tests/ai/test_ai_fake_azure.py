"""The wire fake itself: Azure's format and errors, read with a plain HTTP client."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
from trio.testing import MockClock

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI, main

BODY = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def azure_url(fake: FakeAzureOpenAI, deployment: str = "gpt4-deploy", query: str = "") -> str:
    query = query or "api-version=2024-10-21"
    return f"{fake.endpoint}/openai/deployments/{deployment}/chat/completions?{query}"


async def post(
    client: httpx.AsyncClient,
    url: str,
    body: object = BODY,
    key: str | None = "test-key-0123456789",
) -> httpx.Response:
    headers = {"api-key": key} if key else {}
    return await client.post(url, json=body, headers=headers)


async def test_stream_is_azure_shaped(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    fake.behaviour = Behaviour(tokens=3)
    response = await post(http_client, azure_url(fake))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    raw = response.content
    assert raw.endswith(b"data: [DONE]\r\n\r\n")
    blocks = raw.split(b"\r\n\r\n")[:-1]
    assert blocks[1] == b": keep-alive"
    events = [msgspec.json.decode(b[6:]) for b in blocks if b.startswith(b"data: {")]
    first, role, *tokens, last = events
    assert first["choices"] == [] and first["prompt_filter_results"][0]["prompt_index"] == 0
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [t["choices"][0]["delta"]["content"] for t in tokens] == [" word1", " word2", " word3"]
    for chunk in (role, *tokens, last):
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"] and chunk["model"] and chunk["created"]
    assert all("content_filter_results" in t["choices"][0] for t in tokens)
    assert last["choices"][0]["delta"] == {} and last["choices"][0]["finish_reason"] == "stop"


async def test_openai_route_has_no_azure_extras(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    response = await http_client.post(
        f"{fake.endpoint}/v1/chat/completions",
        json={**BODY, "model": "gpt4-deploy"},
        headers={"authorization": "Bearer test-key-0123456789"},
    )
    assert response.status_code == 200
    assert b"prompt_filter_results" not in response.content
    assert b"content_filter_results" not in response.content
    assert response.content.endswith(b"data: [DONE]\r\n\r\n")


@pytest.mark.parametrize(
    ("deployment", "query", "key", "status", "code"),
    [
        ("gpt4-deploy", "x=1", "test-key-0123456789", 404, "404"),
        ("gpt4-deploy", "api-version=latest", "test-key-0123456789", 400, "BadRequest"),
        ("gpt4-deploy", "", "wrong", 401, "401"),
        ("gpt4-deploy", "", None, 401, "401"),
        ("nope", "", "test-key-0123456789", 404, "DeploymentNotFound"),
    ],
)
async def test_azure_refusals(
    autojump_clock: MockClock,
    fake: FakeAzureOpenAI,
    http_client: httpx.AsyncClient,
    deployment: str,
    query: str,
    key: str | None,
    status: int,
    code: str,
) -> None:
    response = await post(http_client, azure_url(fake, deployment, query), key=key)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert fake.requests[0].status == status


async def test_malformed_requests(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    url = azure_url(fake)
    assert (await post(http_client, url, {"messages": []})).status_code == 400
    assert (await post(http_client, url, {**BODY, "stream": False})).status_code == 400
    assert (await http_client.get(url)).status_code == 405
    assert (await http_client.post(f"{fake.endpoint}/elsewhere")).status_code == 404


async def test_content_filter_error_body(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    fake.fail_next(400)
    error = (await post(http_client, azure_url(fake))).json()["error"]
    assert error["code"] == "content_filter"
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    assert error["innererror"]["content_filter_result"]["violence"]["filtered"] is True


async def test_429_headers_and_queued_failures(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    fake.fail_next(429, times=2, retry_after=2.5)
    for _ in range(2):
        response = await post(http_client, azure_url(fake))
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.headers["retry-after-ms"] == "2500"
    assert (await post(http_client, azure_url(fake))).status_code == 200


async def test_markers_choose_behaviour_per_request(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    body = {
        "messages": [{"role": "user", "content": "x [fake:tokens:2] [fake:length]"}],
        "stream": True,
    }
    content = (await post(http_client, azure_url(fake), body)).content
    assert content.count(b'"content":" word') == 2 and b'"finish_reason":"length"' in content
    body = {"messages": [{"role": "user", "content": "[fake:503:1]"}], "stream": True}
    assert (await post(http_client, azure_url(fake), body)).status_code == 503
    assert (await post(http_client, azure_url(fake), body)).status_code == 200


async def test_rate_paces_tokens(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    fake.behaviour = Behaviour(tokens=10, rate=5.0)
    start = trio.current_time()
    await post(http_client, azure_url(fake))
    record = await fake.wait_disconnected(0)
    assert record.first_token_at == pytest.approx(start + 0.2, abs=0.01)
    assert record.disconnected_at == pytest.approx(start + 2.0, abs=0.01)


async def test_secrets_are_not_recorded(
    autojump_clock: MockClock, fake: FakeAzureOpenAI, http_client: httpx.AsyncClient
) -> None:
    await post(http_client, azure_url(fake))
    assert "test-key-0123456789" not in repr(fake.requests)


def test_cli_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--tokens", "--rate", "--api-key", "--deployments"):
        assert flag in out


def test_cli_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--deployments", ","])
    assert exited.value.code == 2
