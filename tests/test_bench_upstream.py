"""The benchmark's fake upstream: its fast path writes what the fake's own path writes,
paces by the clock, sees a hang-up at once, and hands anything else to the fake."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import trio
from trio.testing import MockClock

from pichat_trio.adapters.ai import AzureOpenAIChatModel
from pichat_trio.adapters.ai.http_chat import open_http_client
from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI
from pichat_trio.ports import ChatRequest, ChatTurn

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-key"
BODY = {"messages": [{"role": "user", "content": "hi bench:u0.c0.m0"}], "stream": True}


def _load_bench_upstream() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_upstream", ROOT / "bench" / "upstream.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


upstream = _load_bench_upstream()


async def _start(nursery: trio.Nursery, fake: FakeAzureOpenAI) -> str:
    if isinstance(fake, upstream.BenchUpstream):
        nursery.start_soon(fake.pump.run)
    await nursery.start(fake.serve)
    return f"{fake.endpoint}/openai/deployments/gpt-4/chat/completions?api-version=2024-10-21"


async def _post(client: httpx.AsyncClient, url: str, content: str) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": content}], "stream": True}
    return await client.post(url, json=body, headers={"api-key": KEY})


@pytest.mark.parametrize("rate", [0.0, 50.0])
async def test_the_fast_path_writes_what_the_fake_writes(
    autojump_clock: MockClock, nursery: trio.Nursery, rate: float
) -> None:
    behaviour = Behaviour(tokens=4, rate=rate)
    bench = upstream.BenchUpstream(api_key=KEY, behaviour=behaviour)
    plain = FakeAzureOpenAI(api_key=KEY, behaviour=behaviour)
    async with httpx.AsyncClient() as client:
        ours = await _post(client, await _start(nursery, bench), "hi bench:t1")
        theirs = await _post(client, await _start(nursery, plain), "hi bench:t1")
    created = re.compile(rb'"created":\d+')
    assert ours.status_code == theirs.status_code == 200
    assert sorted(ours.headers.multi_items()) == sorted(theirs.headers.multi_items())
    assert created.sub(b"", ours.content) == created.sub(b"", theirs.content)
    [record] = bench.requests
    assert bench.handed_over == 0
    assert record.ended_by == "complete" and record.tokens_sent == 4
    assert record.first_token_at is not None
    if rate:  # token i at start + (i + 1) / rate
        assert record.first_token_at - record.started_at == pytest.approx(0.02, abs=0.005)
    [row] = bench.summary()
    assert row["tag"] == "t1" and row["first_token"] is not None


async def test_a_kept_connection_carries_the_next_request(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    bench = upstream.BenchUpstream(api_key=KEY, behaviour=Behaviour(tokens=3, rate=100))
    url = await _start(nursery, bench)
    request = ChatRequest(model="gpt-4", messages=[ChatTurn("user", "hello")])
    async with open_http_client() as client:
        model = AzureOpenAIChatModel(bench.endpoint, KEY, {"gpt-4": "gpt-4"}, client=client)
        for _ in range(2):
            deltas = [delta async for delta in model.stream_reply(request)]
            assert "".join(d.text for d in deltas) == bench.answer(3)
    assert url and len(bench.requests) == 2
    assert bench.connections == 1 and bench.handed_over == 0


async def test_a_hang_up_is_recorded_at_once(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    bench = upstream.BenchUpstream(api_key=KEY, behaviour=Behaviour(tokens=100, rate=10))
    await _start(nursery, bench)
    body = b'{"messages":[{"role":"user","content":"hi"}],"stream":true}'
    head = (
        b"POST /openai/deployments/gpt-4/chat/completions?api-version=2024-10-21 HTTP/1.1\r\n"
        b"host: x\r\napi-key: %b\r\ncontent-length: %d\r\n\r\n" % (KEY.encode(), len(body))
    )
    stream = await trio.open_tcp_stream("127.0.0.1", bench.port)
    await stream.send_all(head + body)
    received = b""
    while b"word2" not in received:
        received += await stream.receive_some()
    await stream.aclose()
    closed_at = trio.current_time()
    record = await bench.wait_disconnected(0)
    assert record.ended_by == "client"
    assert record.disconnected_at is not None
    assert record.disconnected_at - closed_at < 0.01  # not at the next token, 0.1 s on
    assert record.tokens_sent == 2
    await trio.sleep(1)  # the pump has dropped the stream: nothing more is sent
    assert record.tokens_sent == 2


async def test_what_the_fast_path_does_not_answer_goes_to_the_fake(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    bench = upstream.BenchUpstream(api_key=KEY, behaviour=Behaviour(tokens=3, rate=100))
    url = await _start(nursery, bench)
    async with httpx.AsyncClient() as client:
        limited = await _post(client, url, "hi [fake:429:1]")  # counted: once, then a stream
        again = await _post(client, url, "hi [fake:429:1]")
        wrong_key = await client.post(url, json=BODY, headers={"api-key": "nope"})
        with pytest.raises(httpx.RemoteProtocolError):  # the fake hangs up after a token
            await _post(client, url, "hi [fake:drop:1]")
        after = await _post(client, url, "hi")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "1"
    assert again.status_code == 200 and again.text.endswith("data: [DONE]\r\n\r\n")
    assert wrong_key.status_code == 401
    assert after.status_code == 200 and bench.answer(3).split()[-1] in after.text
    assert [r.status for r in bench.requests] == [429, 200, 401, 200, 200]
    # The first request took its connection to the fake's path; the drop closed it,
    # and the last request came on a new connection, served by the fast path again.
    assert bench.handed_over == 1 and bench.connections == 2
    assert bench.requests[-1].ended_by == "complete"
