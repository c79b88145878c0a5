"""A client that reads slowly, with several answers streaming to it at once, gets them all.

The outbox merges a message's tokens into that message's frame still
waiting in the queue, wherever it sits, so four interleaved streams hold
four frames, not one per token, and a client that reads at all is not cut
off as stuck.
"""

from __future__ import annotations

import trio
from support import RawPeer, open_conversation, run_with_fake_azure
from wsproto.connection import ConnectionState

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI

STREAMS = 4
TOKENS = 300


async def test_a_slow_reader_with_four_interleaved_streams_gets_all_four(tmp_path):
    # Big tokens at full speed: the slow client's socket buffers fill early in
    # the answers, and the four streams' frames interleave in its outbox.
    fake = FakeAzureOpenAI(behaviour=Behaviour(tokens=TOKENS, rate=0), words=["x" * 1000])
    async with run_with_fake_azure(tmp_path, fake) as (server, _):
        async with server.client() as helper:
            conversations = [await open_conversation(helper, f"c{i}") for i in range(STREAMS)]
        peer = await RawPeer.connect(server.url, server.token, receive_buffer=4096)
        with trio.fail_after(60):  # a hang guard
            for conversation_id in conversations:
                await peer.send_action(
                    "send_message", {"conversation_id": conversation_id, "content": "go"}
                )
            texts: dict[str, list[str]] = {c: [] for c in conversations}
            finals: dict[str, dict] = {}
            stored: dict[str, dict] = {}
            while len(stored) < STREAMS:
                assert peer.ws.state is ConnectionState.OPEN, "the slow reader was closed"
                for frame in await peer.frames(8192):  # a slow reader: 8 KB a turn
                    action, payload = frame["action"], frame["payload"]
                    if action == "message_stream":
                        texts[payload["conversation_id"]].append(payload["token"])
                        if payload["finished"]:
                            finals[payload["conversation_id"]] = payload
                    elif action == "new_message" and payload["message"]["role"] == "assistant":
                        stored[payload["message"]["conversation_id"]] = payload["message"]
                await trio.sleep(0.01)  # ... then a pause: about 800 KB/s at most
        # Its frames did wait, and merged.
        assert any(c.outbox.merged > 0 for c in server.app.connections)
        for conversation_id in conversations:
            assert finals[conversation_id]["finish_reason"] == "stop"
            assert "".join(texts[conversation_id]) == fake.answer(TOKENS)
            assert stored[conversation_id]["status"] == "complete"
            assert stored[conversation_id]["content"] == fake.answer(TOKENS)
        await peer.stream.aclose()
