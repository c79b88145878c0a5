"""Keepalive: pings keep a live peer connected; a silent peer is dropped at the timeout.

The timeouts are tested on a ``MockClock`` that jumps whenever every task
waits, so 60 seconds pass without the test sleeping. Where a database call
runs in a worker thread during the timed phase (an answer being interrupted
and stored), virtual time would also jump while the thread works, so that
case uses a real, short timeout instead, and no test on virtual time has a
database deadline (``DB_TIMEOUT=0``).
"""

from __future__ import annotations

import trio
import trio.testing
from support import (
    RawPeer,
    collect_stream,
    make_settings,
    open_conversation,
    run_server,
    run_with_fake_azure,
)
from wsproto.events import Ping

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI

# No database deadline on virtual time: it would pass while a start-up query works.
_ON_VIRTUAL_TIME = {"HEARTBEAT_INTERVAL": "20", "HEARTBEAT_TIMEOUT": "60", "DB_TIMEOUT": "0"}


async def _read_until_closed(peer: RawPeer) -> int:
    """Read (so the server's pings arrive) but never answer; returns the pings seen."""
    pings = 0
    while True:
        data = await peer.stream.receive_some(65536)
        peer.ws.receive_data(data or None)
        pings += sum(isinstance(event, Ping) for event in peer.ws.events())
        if not data:
            return pings


async def test_a_silent_peer_is_dropped_at_the_timeout(
    tmp_path, autojump_clock: trio.testing.MockClock
):
    settings = make_settings(tmp_path, _ON_VIRTUAL_TIME)
    async with run_server(settings) as server:
        silent = await RawPeer.connect(server.url, server.token)
        start = trio.current_time()
        with trio.fail_after(120):
            pings = await _read_until_closed(silent)
        dropped_after = trio.current_time() - start
        await silent.stream.aclose()
        assert 60 <= dropped_after <= 60 + 20  # the deadline, checked at the next ping
        assert pings >= 3  # at 20, 40 and 60 seconds (the first came with the handshake)
        assert not server.app.connections


async def test_a_peer_that_answers_pings_stays_connected(
    tmp_path, autojump_clock: trio.testing.MockClock
):
    settings = make_settings(tmp_path, _ON_VIRTUAL_TIME)
    async with run_server(settings) as server, server.client() as client:
        await trio.sleep(300)  # virtual: five heartbeat timeouts
        assert len(server.app.connections) == 1
        assert (await client.call("ping"))["action"] == "pong"


async def test_dropping_a_silent_peer_interrupts_its_answer(tmp_path):
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=100_000, rate=50))
    env = {"HEARTBEAT_INTERVAL": "0.1", "HEARTBEAT_TIMEOUT": "0.4", "AI_READ_TIMEOUT": "100"}
    async with run_with_fake_azure(tmp_path, fake, env) as (server, _), server.client() as watcher:
        with trio.fail_after(10):
            conversation_id = await open_conversation(watcher)
            silent = await RawPeer.connect(server.url, server.token)
            await silent.send_action(
                "send_message", {"conversation_id": conversation_id, "content": "hi"}
            )
            results: dict[str, dict] = {}

            async def watch() -> None:  # reading keeps the watcher answering pings
                results["stream"] = await collect_stream(watcher, conversation_id)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                start = trio.current_time()
                pings = await _read_until_closed(silent)
                dropped_after = trio.current_time() - start
                upstream = await fake.wait_disconnected(0)
            stream = results["stream"]
        await silent.stream.aclose()
    assert pings >= 2
    assert 0.3 <= dropped_after < 2
    assert upstream.ended_by == "client"
    assert 0 < upstream.tokens_sent < 100_000
    # The watcher, which answers pings, stayed and saw the answer interrupted and kept.
    assert stream["final"]["finish_reason"] == "interrupted"
    assert stream["message"]["status"] == "interrupted"
    assert stream["message"]["content"] == stream["text"]
