"""Upstream connections opened as clients connect (``AI_PRECONNECT``), seen from a fake
Azure OpenAI that counts the TCP connections it accepts."""

from __future__ import annotations

import socket

import trio
from support import ask, run_with_fake_azure

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI


async def _until_connections(fake: FakeAzureOpenAI, count: int) -> None:
    with trio.fail_after(5):
        while fake.connections < count:  # noqa: ASYNC110 - polls the fake's counter
            await trio.sleep(0.01)


async def test_first_messages_find_their_connections_open(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=5, rate=0))
    texts: dict[int, str] = {}
    async with (
        run_with_fake_azure(tmp_path, fake) as (server, _),
        server.client() as a,
        server.client() as b,
        server.client() as c,
    ):
        await _until_connections(fake, 3)
        assert fake.requests == []  # opened before any message

        async def one(i: int, client) -> None:  # type: ignore[no-untyped-def]
            texts[i] = (await ask(client, f"question {i}"))["text"]

        async with trio.open_nursery() as nursery:
            for i, client in enumerate((a, b, c)):
                nursery.start_soon(one, i, client)
    assert texts == {i: fake.answer(5) for i in range(3)}
    assert len(fake.requests) == 3
    assert fake.connections == 3  # the three answers used the connections opened ahead


async def test_no_more_than_the_limit_and_none_when_off(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=5, rate=0))
    async with (
        run_with_fake_azure(tmp_path, fake, {"AI_PRECONNECT": "2"}) as (server, _),
        server.client() as a,
        server.client(),
        server.client(),
    ):
        await _until_connections(fake, 2)
        assert (await ask(a))["text"] == fake.answer(5)
        assert fake.connections == 2

    off = FakeAzureOpenAI(behaviour=Behaviour(tokens=5, rate=0))
    async with (
        run_with_fake_azure(tmp_path, off, {"AI_PRECONNECT": "0"}) as (server, _),
        server.client() as a,
        server.client(),
    ):
        assert (await ask(a))["text"] == off.answer(5)
        assert off.connections == 1  # the answer's own


async def test_an_unreachable_service_leaves_the_clients_working(tmp_path, caplog):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {"AZURE_OPENAI_ENDPOINT": closed}
    async with (
        run_with_fake_azure(tmp_path, env=env) as (server, _),
        server.client() as client,
    ):
        with trio.fail_after(5):
            while "could not open connections to the AI" not in caplog.text:  # noqa: ASYNC110
                await trio.sleep(0.01)
        reply = await client.call("get_conversations", {"limit": 5})
        assert reply["action"] == "conversations_list"
