"""The offline recogniser is shared fairly between users, over real sockets.

Alice queues long clips; Bob's short clip must not wait for them. The test
syncs on the recogniser's own turns (``OfflineSpeechEngine.turns``), never on
time: once Alice holds the decoder with three long clips admitted, Bob asks;
his answer must come while all three of hers are still queued. (With one
lock for all, as before, Bob waited for all three; with whole clips as
turns, for Alice's first.)
"""

from __future__ import annotations

from typing import Any

import trio
from speech.speech_support import needs_espeak
from support import make_settings, run_server

GUARD = 300  # seconds, against a hang; the first test takes about 5 s here
# About 20 s of speech at espeak-ng's pace: four or five turns at the decoder.
LONG_TEXT = " ".join(["the quick brown fox jumps over the lazy dog"] * 7)


async def _clip(client: Any, text: str) -> str:
    spoken = await client.call("text_to_speech", {"text": text})
    assert spoken["action"] == "text_to_speech_result", spoken
    audio: str = spoken["payload"]["audio_data"]
    return audio


async def _replies(client: Any, request_ids: set[str], arrivals: list[tuple[str, str]]) -> None:
    while request_ids:
        frame = await client.receive()
        if frame.get("request_id") in request_ids:
            request_ids.discard(frame["request_id"])
            arrivals.append(("alice", frame["action"]))
            assert frame["action"] == "speech_to_text_result", frame


@needs_espeak
async def test_a_short_clip_is_answered_before_another_users_long_queue(tmp_path):
    async with run_server(make_settings(tmp_path, {"SPEECH_TIMEOUT": "300"})) as server:
        (alice, alice_token), (_, bob_token) = server.app.db.repository.add_users(["alice", "bob"])
        turns = server.app.router.services.speech.engine.turns
        arrivals: list[tuple[str, str]] = []
        async with server.client(alice_token) as a, server.client(bob_token) as b:
            with trio.fail_after(GUARD):
                long_clip, short_clip = await _clip(a, LONG_TEXT), await _clip(b, "hello")
                ask = {"audio_data": long_clip, "language": "en-US"}
                ids = {await a.request("speech_to_text", ask) for _ in range(3)}
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_replies, a, ids, arrivals)
                    await turns.wait_until(
                        lambda: turns.jobs(alice.id) == 3 and turns.holder == alice.id
                    )
                    heard = await b.call("speech_to_text", {"audio_data": short_clip})
                    arrivals.append(("bob", heard["action"]))
                    alice_still_queued = turns.jobs(alice.id)
                    nursery.cancel_scope.cancel()  # Alice's clips are cancelled with her socket
    assert arrivals[0] == ("bob", "speech_to_text_result"), arrivals
    assert heard["payload"]["text"], heard  # something was heard: the clip was decoded
    assert alice_still_queued == 3  # none of Alice's clips had finished


@needs_espeak
async def test_one_users_queue_is_bounded(tmp_path):
    settings = make_settings(tmp_path, {"SPEECH_QUEUE_PER_USER": "2"})
    async with run_server(settings) as server:
        turns = server.app.router.services.speech.engine.turns
        user = await _user_id(server)
        async with server.client() as client, server.client() as other:
            with trio.fail_after(GUARD):
                long_clip = await _clip(client, LONG_TEXT)
                for _ in range(2):
                    await client.request("speech_to_text", {"audio_data": long_clip})
                await turns.wait_until(lambda: turns.jobs(user) == 2)
                refused = await other.call("speech_to_text", {"audio_data": long_clip})
    assert refused["action"] == "error", refused
    assert refused["payload"]["code"] == "rate_limited"
    assert refused["payload"]["request_action"] == "speech_to_text"
    assert refused["payload"]["retry_after_ms"] > 0


async def _user_id(server: Any) -> str:
    """The id of the user of the server's own token."""
    return str(server.app.db.repository.user_for_token(server.token).id)
