"""Voice sessions (protocol v1.1) over a real socket, espeak-ng speech streamed in real time.

The server runs with the offline engines (pocketsphinx listens, espeak-ng
speaks) and its AI pointed at the fake Azure OpenAI, which streams a
five-sentence answer a few tokens a second, so that the answer is still
generating while its first sentences are spoken. The microphone is a task
that sends 20 ms binary frames at the pace of real time.
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from support import RunningServer, run_with_fake_azure
from voice.voice_support import RATE, needs_espeak, noise, silence, spoken

from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI

pytestmark = needs_espeak

VOICE = "en-us+klatt5"  # the voice pocketsphinx hears best (bench/speech_accuracy.py)
WORDS = [
    "One",
    " is",
    " first.",
    " Two",
    " comes",
    " next.",
    " Three",
    " is",
    " here.",
    " Four",
    " is",
    " near.",
    " Five",
    " ends",
    " it.",
]
FRAME_MS = 20


def _utterance(*parts: str, pause_ms: int = 0) -> bytes:
    audio = silence(300)
    for index, part in enumerate(parts):
        if index:
            audio += silence(pause_ms)
        audio += spoken(part, VOICE)
    return audio + silence(1200)


@asynccontextmanager
async def _voice_server(
    tmp_path: Path, rate: float = 8.0, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[RunningServer, FakeAzureOpenAI]]:
    fake = FakeAzureOpenAI(words=WORDS, behaviour=Behaviour(tokens=len(WORDS), rate=rate))
    async with run_with_fake_azure(tmp_path, fake, env) as (server, served):
        yield server, served


async def _microphone(client: Any, pcm: bytes) -> None:
    """Stream ``pcm`` as a microphone does: 20 ms frames, in real time."""
    size = 2 * RATE * FRAME_MS // 1000
    for start in range(0, len(pcm), size):
        await client.send_raw(pcm[start : start + size])
        await trio.sleep(FRAME_MS / 1000)


async def _start(client: Any, **payload: Any) -> dict[str, Any]:
    reply = await client.call("voice_start", {"sample_rate": RATE, **payload})
    assert reply["action"] == "voice_started", reply
    return dict(reply["payload"])


def _ms(chunk: dict[str, Any]) -> float:
    return 1000 * len(base64.b64decode(chunk["audio_data"])) / (2 * RATE)


async def _until(client: Any, frames: list[dict[str, Any]], done: Any) -> None:
    while True:
        frame = await client.receive()
        frames.append(frame)
        if done(frame):
            return


def _of(frames: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [f["payload"] for f in frames if f["action"] == action]


async def test_hello_offers_voice_sessions(tmp_path: Path) -> None:
    async with _voice_server(tmp_path) as (server, _), server.client() as client:
        reply = await client.call("hello", {"client": "test", "version": "1"})
    payload = reply["payload"]
    assert payload["protocol"] == "1.1"
    assert {"voice", "barge_in"} <= set(payload["features"])
    assert payload["audio"] == {"sample_rates": [RATE], "formats": ["pcm_s16le"]}
    assert payload["limits"]["max_message_chars"] == 32000
    assert payload["limits"]["max_frame_bytes"] == server.settings.max_frame_bytes
    assert "american" in payload["accents"] and "american" in payload["voices"]


async def test_a_spoken_turn_is_heard_answered_and_spoken_while_generating(
    tmp_path: Path,
) -> None:
    async with _voice_server(tmp_path) as (server, fake), server.client() as client:
        started = await _start(client, silence_ms=700)
        frames: list[dict[str, Any]] = []
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                # a 350 ms pause inside the utterance: shorter than silence_ms
                audio = _utterance("play some music", "please", pause_ms=350)
                nursery.start_soon(_microphone, client, audio)
                await _until(client, frames, lambda f: f["action"] == "conversation_updated")
                await _until(
                    client,
                    frames,
                    lambda f: f["action"] == "voice_audio" and f["payload"]["final"],
                )
    transcripts = _of(frames, "voice_transcript")
    finals = [t for t in transcripts if t["final"]]
    assert len(finals) == 1, transcripts  # the short pause did not end the utterance
    assert "music" in finals[0]["text"] and len(finals[0]["text"].split()) >= 4
    assert [t for t in transcripts if not t["final"]], "no partial transcript"
    assert transcripts.index(finals[0]) == len(transcripts) - 1
    assert all(t["voice_id"] == started["voice_id"] for t in transcripts)
    [sent] = _of(frames, "message_sent")
    assert sent["is_audio"] and sent["audio_file"] and sent["content"] == finals[0]["text"]
    assert sent["conversation_id"] == started["conversation_id"]
    chunks = _of(frames, "voice_audio")
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert chunks[-1]["final"] and chunks[-1]["text"] == ""
    stored = [
        m["message"] for m in _of(frames, "new_message") if m["message"]["role"] == "assistant"
    ]
    assert stored[-1]["status"] == "complete"
    assert "".join(c["text"] for c in chunks) == stored[-1]["content"] == fake.answer()
    assert all(c["content_type"] == f"audio/pcm;rate={RATE}" for c in chunks)
    # two sentences were spoken before the answer had finished generating
    finished = next(
        i
        for i, f in enumerate(frames)
        if f["action"] == "message_stream" and f["payload"]["finished"]
    )
    early = [f for f in frames[:finished] if f["action"] == "voice_audio"]
    assert len(early) >= 2
    # the utterance is kept as a WAV with the message
    wav = (server.settings.audio_dir / sent["audio_file"]).read_bytes()
    assert wav[:4] == b"RIFF" and len(wav) > len(spoken("play some music", VOICE))


async def _answer_started(client: Any, frames: list[dict[str, Any]], count: int) -> None:
    await _until(
        client,
        frames,
        lambda f: f["action"] == "voice_audio" and f["payload"]["seq"] == count - 1,
    )


async def _ask_aloud(client: Any, chunks: int) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Open a session, say a sentence, and wait for ``chunks`` chunks of the answer:
    the frames so far, and the ids that voice_playback and voice_interrupt take."""
    started = await _start(client)
    frames: list[dict[str, Any]] = []
    await _microphone(client, _utterance("play some music please"))
    await _answer_started(client, frames, chunks)
    message_id = _of(frames, "voice_audio")[0]["message_id"]
    return frames, {"voice_id": started["voice_id"], "message_id": message_id}


async def test_barge_in_stores_exactly_the_chunks_that_had_started(tmp_path: Path) -> None:
    async with _voice_server(tmp_path, rate=4.0) as (server, fake), server.client() as client:
        with trio.fail_after(60):
            frames, voice = await _ask_aloud(client, 2)
            chunks = _of(frames, "voice_audio")
            played = _ms(chunks[0]) + 5  # into the second chunk
            await client.request("voice_playback", {**voice, "played_ms": 40})
            await client.request("voice_interrupt", {**voice, "played_ms": played})
            after: list[dict[str, Any]] = []
            await _until(client, after, lambda f: f["action"] == "conversation_updated")
            upstream = await fake.wait_disconnected(0)
            pong = await client.call("ping")
            assert pong["action"] == "pong"
    heard = chunks[0]["text"] + chunks[1]["text"]
    final = next(p for p in _of(after, "message_stream") if p["finished"])
    assert final["finish_reason"] == "interrupted"
    ends = [i for i, f in enumerate(after) if f["action"] == "message_stream"]
    assert not [f for f in after[ends[-1] :] if f["action"] == "voice_audio"]
    stored = next(m["message"] for m in _of(after, "new_message"))
    assert stored["status"] == "interrupted" and stored["content"] == heard
    assert upstream.ended_by == "client"  # the AI request was closed
    assert len(fake.requests) == 1


async def test_the_next_context_holds_only_what_was_heard(tmp_path: Path) -> None:
    async with _voice_server(tmp_path, rate=4.0) as (server, fake), server.client() as client:
        with trio.fail_after(60):
            frames, voice = await _ask_aloud(client, 1)
            chunk = _of(frames, "voice_audio")[0]
            await client.request("voice_interrupt", {**voice, "played_ms": 1})
            await _until(client, frames, lambda f: f["action"] == "conversation_updated")
            conversation_id = _of(frames, "message_sent")[0]["conversation_id"]
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": "and then?"}
            )
            request = await fake.wait_request(1)
    assistant = [m for m in request.messages if m["role"] == "assistant"]
    assert assistant == [{"role": "assistant", "content": chunk["text"]}]


async def test_quiet_noise_during_playback_never_interrupts(tmp_path: Path) -> None:
    async with _voice_server(tmp_path, rate=20.0) as (server, _), server.client() as client:
        with trio.fail_after(60):
            frames, voice = await _ask_aloud(client, 1)
            await client.request("voice_playback", {**voice, "played_ms": 10})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_microphone, client, noise(2000, 400))
                await _until(client, frames, lambda f: f["action"] == "conversation_updated")
                await _until(
                    client,
                    frames,
                    lambda f: f["action"] == "voice_audio" and f["payload"]["final"],
                )
    final = next(p for p in _of(frames, "message_stream") if p["finished"])
    assert final["finish_reason"] == "stop"
    assert _of(frames, "voice_audio")[-1]["final"]


async def test_a_lower_barge_in_level_lets_quieter_speech_interrupt(tmp_path: Path) -> None:
    # Speech about 16 dB down (-38 dBFS median, never above -29) stays under the
    # default -30 dBFS during playback; VOICE_BARGE_IN_DBFS=-45 lets it through.
    samples = array("h")
    samples.frombytes(spoken("play some music please", VOICE))
    quieter = array("h", (s // 6 for s in samples)).tobytes()
    env = {"VOICE_BARGE_IN_DBFS": "-45", "VOICE_BARGE_IN_MS": "150"}
    async with (
        _voice_server(tmp_path, rate=4.0, env=env) as (server, _),
        server.client() as client,
    ):
        with trio.fail_after(60):
            frames, voice = await _ask_aloud(client, 1)
            await client.request("voice_playback", {**voice, "played_ms": 10})
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_microphone, client, silence(100) + quieter + silence(900))
                await _until(
                    client,
                    frames,
                    lambda f: f["action"] == "message_stream" and f["payload"]["finished"],
                )
                nursery.cancel_scope.cancel()
    final = next(p for p in _of(frames, "message_stream") if p["finished"])
    assert final["finish_reason"] == "interrupted"


@pytest.mark.parametrize("how", ["voice_stop", "disconnect"])
async def test_ending_the_session_mid_answer_stores_what_was_heard(
    tmp_path: Path, how: str
) -> None:
    async with _voice_server(tmp_path, rate=3.0) as (server, fake):
        async with server.client() as client:
            with trio.fail_after(60):
                frames, voice = await _ask_aloud(client, 1)
                chunk = _of(frames, "voice_audio")[0]
                conversation_id = _of(frames, "message_sent")[0]["conversation_id"]
                await client.request("voice_playback", {**voice, "played_ms": 1})
                if how == "voice_stop":
                    reply = await client.call("voice_stop", {"voice_id": voice["voice_id"]})
                    assert reply["action"] == "voice_stopped", reply
                    binary = await client.call("ping")
                    assert binary["action"] == "pong"
        with trio.fail_after(30):
            await fake.wait_disconnected(0)
            async with server.client() as other:
                while True:
                    listed = await other.call("get_messages", {"conversation_id": conversation_id})
                    answer = listed["payload"]["messages"][-1]
                    if answer["status"] != "streaming":
                        break
                    await trio.sleep(0.05)
    assert answer["role"] == "assistant"
    assert answer["status"] == "interrupted" and answer["content"] == chunk["text"]


async def test_voice_errors(tmp_path: Path) -> None:
    async with _voice_server(tmp_path) as (server, _), server.client() as client:
        await client.send_raw(b"\x00\x00")
        refused = await client.receive()
        assert refused["payload"]["code"] == "unsupported_frame"
        started = await _start(client)
        busy = await client.call("voice_start", {"sample_rate": RATE})
        assert busy["payload"]["code"] == "busy"
        unknown = "00000000-0000-4000-8000-000000000000"
        missing = await client.call("voice_end", {"voice_id": unknown})
        assert missing["payload"]["code"] == "not_found"
        await client.send_raw(b"\x00\x00\x00")  # not whole samples
        odd = await client.receive()
        assert odd["payload"]["code"] == "unsupported_audio"
        bad = await client.call(
            "voice_interrupt",
            {"voice_id": started["voice_id"], "message_id": started["voice_id"], "played_ms": 1},
        )
        assert bad["payload"]["code"] == "not_found"
        wrong = await client.call("voice_start", {"sample_rate": 44100})
        assert wrong["payload"]["code"] in ("busy", "invalid_request")
        stopped = await client.call("voice_stop", {"voice_id": started["voice_id"]})
        assert stopped["action"] == "voice_stopped"
        wrong = await client.call("voice_start", {"sample_rate": 44100})
        assert wrong["payload"]["code"] == "invalid_request"
        await client.send_raw(b"\x00\x00")
        after = await client.receive()
        assert after["payload"]["code"] == "unsupported_frame"


async def test_audio_far_ahead_of_real_time_is_dropped_with_rate_limited(tmp_path: Path) -> None:
    async with _voice_server(tmp_path) as (server, _), server.client() as client:
        await _start(client)
        frame = silence(200)
        with trio.fail_after(30):
            for _ in range(60):  # 12 s of audio at once: past the 5 s allowed ahead
                await client.send_raw(frame)
            refused = await client.receive()
            assert refused["payload"]["code"] == "rate_limited", refused
            assert refused["payload"]["retry_after_ms"] > 0
            pong = await client.call("ping")  # the connection and its session go on
    assert pong["action"] == "pong"
