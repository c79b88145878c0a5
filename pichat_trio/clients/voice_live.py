"""``pichat voice --live``: a hands-free conversation over a voice session (protocol v1.1).

The microphone command's raw 16 kHz PCM goes to the server in 40 ms frames;
the server finds the end of each utterance, and the answer's sentences come
back as ``voice_audio`` chunks, played as they arrive (one player process
per answer, fed a WAV stream). While an answer plays, the client reports
its position (``voice_playback``) four times a second; Enter interrupts it
(``voice_interrupt``), and so does speaking over it (the server hears it).
An interrupted answer's player is stopped at once.

A server whose ``hello`` does not offer ``voice`` gets the v1 turn loop.
"""

from __future__ import annotations

import base64
import contextlib
import shlex
import subprocess
from typing import Any

import trio

from ..wav import wav_header
from .session import Session

__all__ = ["RATE", "offers_voice", "run_live_session"]

RATE = 16000
# 40 ms: a frame costs the server the same to read whatever its size, and 20 ms frames
# made a hundred sessions miss their latency targets on one core (bench/voice_sessions.py)
FRAME_BYTES = 2 * RATE * 40 // 1000
_REPORT_SECONDS = 0.25


async def offers_voice(session: Session) -> bool:
    try:
        hello = await session.call("hello", {"client": "pichat voice"})
    except Exception:  # a v1 server: unknown_action
        return False
    return "voice" in (hello.get("features") or [])


class _State:
    def __init__(self) -> None:
        self.playing: _Playback | None = None
        self.answering = False  # an answer's text is being printed


class _Playback:
    """One answer's audio, fed to a player as it comes; where playback is."""

    def __init__(self, command: str | None, message_id: str) -> None:
        self.command = command
        self.message_id = message_id
        self.process: trio.Process | None = None
        self.sent_ms = 0.0
        self.started_at: float | None = None
        self.stopped = False

    async def add(self, pcm: bytes) -> None:
        if self.stopped:
            return
        if self.started_at is None:
            self.started_at = trio.current_time()
            if self.command:
                self.process = await trio.lowlevel.open_process(
                    shlex.split(self.command), stdin=subprocess.PIPE
                )
                await self._write(wav_header(RATE, 1))
        self.sent_ms += 1000 * len(pcm) / (2 * RATE)
        await self._write(pcm)

    async def _write(self, data: bytes) -> None:
        if self.process is not None and self.process.stdin is not None and data:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.process.stdin.send_all(data)

    def played_ms(self) -> float:
        if self.started_at is None:
            return 0.0
        return min(self.sent_ms, 1000 * (trio.current_time() - self.started_at))

    async def finish(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            await self.process.stdin.aclose()

    def stop(self) -> None:
        self.stopped = True
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


async def run_live_session(
    session: Session,
    conversation_id: str,
    *,
    stream_command: str,
    play_command: str | None,
    language: str | None,
    echo_cancellation: bool,
    lines: trio.MemoryReceiveChannel[str],
    say: Any,
    stop_at_end_of_input: bool = True,
) -> None:
    """Until the input ends (then ``voice_stop``) or the connection is lost. Without a
    keyboard (``stop_at_end_of_input`` false: a service's stdin is /dev/null) the end
    of input changes nothing: the session runs until the client is stopped."""
    payload: dict[str, Any] = {
        "sample_rate": RATE,
        "conversation_id": conversation_id,
        "echo_cancellation": echo_cancellation,
    }
    if language:
        payload["language"] = language
    started = await session.call("voice_start", payload)
    voice_id = started["voice_id"]
    say(f"[listening ({started['engine']}); speak, Enter interrupts an answer]")
    state = _State()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_microphone, session, stream_command)
        nursery.start_soon(_report, session, voice_id, state)

        async def keys() -> None:
            async for _line in lines:
                playback = state.playing
                if playback is not None and not playback.stopped:
                    position = {"voice_id": voice_id, "message_id": playback.message_id}
                    played = playback.played_ms()
                    playback.stop()
                    await session.send("voice_interrupt", {**position, "played_ms": played})
                    say("[interrupted]")
            if not stop_at_end_of_input:
                await trio.sleep_forever()
            await session.call("voice_stop", {"voice_id": voice_id})
            nursery.cancel_scope.cancel()

        nursery.start_soon(keys)
        async for frame in session.events:
            await _on_event(frame, state, play_command, say)
        nursery.cancel_scope.cancel()


async def _on_event(
    frame: dict[str, Any], state: _State, play_command: str | None, say: Any
) -> None:
    action, p = frame["action"], frame.get("payload") or {}
    if action == "voice_transcript":
        if p["final"]:
            say(f"you> {p['text']}" if p["text"] else "[nothing was heard]")
        else:
            say(f"[hearing: {p['text']}]")
    elif action == "voice_audio":
        playback = state.playing
        if playback is None or playback.message_id != p["message_id"]:
            if playback is not None:
                playback.stop()
            playback = state.playing = _Playback(play_command, p["message_id"])
        if p["final"]:
            await playback.finish()
            say(f"[spoken: {playback.sent_ms / 1000:.1f} s]")
        else:
            await playback.add(base64.b64decode(p["audio_data"]))
    elif action == "message_stream":
        if not state.answering:
            state.answering = True
            say("pichat> ", end="")
        if p.get("token"):
            say(p["token"], end="")
        if p.get("finished"):
            state.answering = False
            reason = p.get("finish_reason")
            say("" if reason == "stop" else f" [{reason}]")
            playback = state.playing
            if reason == "interrupted" and playback is not None:
                playback.stop()  # barge-in heard by the server: stop at once
    elif action == "error":
        say(f"error: {p.get('message') or p.get('code')}")


async def _microphone(session: Session, command: str) -> None:
    process = await trio.lowlevel.open_process(shlex.split(command), stdout=subprocess.PIPE)
    assert process.stdout is not None
    pending = b""
    try:
        async for chunk in process.stdout:
            pending += chunk
            while len(pending) >= FRAME_BYTES:
                await session.send_audio(pending[:FRAME_BYTES])
                pending = pending[FRAME_BYTES:]
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


async def _report(session: Session, voice_id: str, state: _State) -> None:
    while True:
        await trio.sleep(_REPORT_SECONDS)
        playback = state.playing
        if playback is None or playback.stopped or playback.started_at is None:
            continue
        if playback.played_ms() >= playback.sent_ms:
            continue
        position = {"voice_id": voice_id, "message_id": playback.message_id}
        await session.send("voice_playback", {**position, "played_ms": playback.played_ms()})
