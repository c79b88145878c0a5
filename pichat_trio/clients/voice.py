"""``pichat voice``: the Raspberry Pi client.

A turn: record (push-to-talk with Enter or a GPIO button, or a fixed length),
``speech_to_text``, ``send_message`` with ``is_audio`` and the recording, print the answer
as it streams, then ``text_to_speech`` with ``stream: true``, played as its chunks arrive.
The live mode loops over turns and reconnects (with backoff) after the server restarts;
``--input FILE.wav`` does one turn with that file and exits. ``--live`` talks hands-free
over a voice session where the server offers one (``voice_live.py``).
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import stat
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import trio

from ..errors import UnsupportedAudio
from .audio import Player, finished_wav, record
from .lines import read_lines
from .session import ClientError, Refused, ServerError, Session, open_session
from .voice_live import offers_voice, run_live_session

__all__ = ["run_voice"]

BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Seconds between reconnection attempts; the last repeats."""

TITLE = "Voice"


class Voice:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.conversation_id: str | None = args.conversation
        self.output_dir: Path | None = args.output_dir
        self.player = None if args.no_play else Player(args.play_command)

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    async def conversation(self, session: Session) -> str:
        if self.conversation_id is not None:
            try:
                await session.call("get_conversation", {"id": self.conversation_id})
                return self.conversation_id
            except ServerError as error:
                if error.code != "not_found":
                    raise
                self.say("[the conversation is gone; starting a new one]")
        created = await session.call("create_conversation", {"title": TITLE})
        self.conversation_id = created["id"]
        return self.conversation_id

    async def turn(self, session: Session, wav: bytes, play: bool) -> dict[str, Any] | None:
        """One exchange; returns the stored assistant message (None if nothing was heard)."""
        conversation_id = await self.conversation(session)
        audio = base64.b64encode(wav).decode()
        request: dict[str, Any] = {"audio_data": audio}
        if self.args.language:
            request["language"] = self.args.language
        heard = await session.call("speech_to_text", request)
        text = heard["text"].strip()
        if not text:
            self.say("[nothing was heard]")
            return None
        self.say(f"you> {text}")
        session.drain()  # the answer's frames are all that follow
        payload = {
            "conversation_id": conversation_id,
            "content": text,
            "is_audio": True,
            "audio_data": audio,
        }
        await session.call("send_message", payload, until="message_sent")
        answer = await self.answer(session, conversation_id)
        if answer["content"].strip():
            await self.speak(session, answer, play)
        return answer

    async def answer(self, session: Session, conversation_id: str) -> dict[str, Any]:
        """Print the answer as it streams; return it as stored."""
        self.say("pichat> ", end="")
        async for frame in session.events:
            action, p = frame["action"], frame.get("payload") or {}
            if action == "message_stream" and p.get("conversation_id") == conversation_id:
                self.say(p.get("token", ""), end="")
                if p.get("finished") and p.get("finish_reason") != "stop":
                    self.say(f" [{p.get('finish_reason')}]", end="")
            elif action == "new_message" and p["message"]["conversation_id"] == conversation_id:
                if p["message"]["role"] == "assistant":
                    self.say()
                    message: dict[str, Any] = p["message"]
                    return message
            elif action == "error":
                self.say(f"\nerror: {p.get('message') or p.get('code')}")
        raise ClientError("the connection to the server was lost")

    async def speak(self, session: Session, answer: dict[str, Any], play: bool) -> None:
        async with aclosing(_speech(session, answer["content"])) as chunks:
            if play and self.player is not None:
                wav = await self.player.play(chunks)
            else:
                wav = b"".join([chunk async for chunk in chunks])
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            path = self.output_dir / f"answer-{answer['id']}.wav"
            await trio.Path(path).write_bytes(finished_wav(wav))
            self.say(f"[speech written to {path}]")


async def _speech(session: Session, text: str) -> AsyncGenerator[bytes, None]:
    payload = {"text": text[:5000], "stream": True}
    async with aclosing(session.stream("text_to_speech", payload)) as chunks:
        async for chunk in chunks:
            if chunk.get("audio_data"):
                yield base64.b64decode(chunk["audio_data"])


async def _one_turn(voice: Voice, url: str, token: str, path: Path) -> int:
    wav = finished_wav(await trio.Path(path).read_bytes())
    async with open_session(url, token) as session:
        answer = await voice.turn(session, wav, play=False)
    return 0 if answer is not None else 1


class _Triggers:
    """When to start and stop recording: Enter, a GPIO button, or a fixed length."""

    def __init__(self, args: argparse.Namespace, lines: trio.MemoryReceiveChannel[str]) -> None:
        self.lines = lines
        self.seconds: float | None = args.seconds
        self.button: Any = None
        self.pressed = trio.Event()
        self.released = trio.Event()
        if args.gpio is not None:
            self.button = _button(args.gpio, self)

    def prompt(self) -> str:
        if self.button is not None:
            return "hold the button and talk"
        if self.seconds:
            return f"press Enter and talk for {self.seconds:g} s"
        return "press Enter to talk"

    async def start(self) -> None:
        if self.button is not None:
            await self.pressed.wait()
            self.pressed = trio.Event()
            return
        await self.lines.receive()  # EndOfChannel at end of input: the loop ends

    def stop(self) -> Callable[[], Awaitable[object]]:
        if self.button is not None:

            async def released() -> None:
                await self.released.wait()
                self.released = trio.Event()

            return released
        if self.seconds:
            return partial(trio.sleep, self.seconds)
        return self.lines.receive


def _button(pin: int, triggers: _Triggers) -> Any:
    from gpiozero import Button  # the pi extra

    token = trio.lowlevel.current_trio_token()
    button = Button(pin)
    button.when_pressed = lambda: trio.from_thread.run_sync(triggers.pressed.set, trio_token=token)
    button.when_released = lambda: trio.from_thread.run_sync(
        triggers.released.set, trio_token=token
    )
    return button


async def _live(voice: Voice, url: str, token: str, stdin: TextIO) -> int:
    """The loop of turns or the voice session, until the input ends or Ctrl-C (130)."""
    interrupted = False

    async def on_interrupt(scope: trio.CancelScope) -> None:
        # Ctrl-C (or SIGINT from a service manager) cancels everything in order: the
        # microphone command is stopped and the WebSocket closed, never cut half-way
        # by a KeyboardInterrupt raised wherever the program happened to be.
        nonlocal interrupted
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                interrupted = True
                scope.cancel()
                return

    with trio.CancelScope() as everything:
        async with trio.open_nursery() as guard:
            guard.start_soon(on_interrupt, everything)
            code = await _turns_or_session(voice, url, token, stdin)
            guard.cancel_scope.cancel()
            return code
    return 130 if interrupted else 0


async def _turns_or_session(voice: Voice, url: str, token: str, stdin: TextIO) -> int:
    lines_in, lines = trio.open_memory_channel[str](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_lines, lines_in, stdin)
        triggers = _Triggers(voice.args, lines)
        attempt = 0
        while True:
            try:
                async with open_session(url, token) as session:
                    attempt = 0
                    conversation_id = await voice.conversation(session)
                    voice.say(f"[connected to {url}, conversation {conversation_id}]")
                    if voice.args.live and await offers_voice(session):
                        await _hands_free(voice, session, conversation_id, lines)
                        nursery.cancel_scope.cancel()
                        return 0
                    if voice.args.live:
                        voice.say("[the server has no voice sessions: push-to-talk turns]")
                    while True:
                        voice.say(f"[{triggers.prompt()}]")
                        await triggers.start()
                        voice.say("[recording…]")
                        try:
                            wav = await record(voice.args.record_command, triggers.stop())
                        except UnsupportedAudio as error:
                            voice.say(f"[the recorder gave no usable WAV: {error}]")
                            continue
                        if not wav:
                            voice.say("[the recording was empty]")
                            continue
                        try:
                            await voice.turn(session, wav, play=True)
                        except ServerError as error:
                            voice.say(f"error: {error}")
            except trio.EndOfChannel:
                nursery.cancel_scope.cancel()
                return 0
            except Refused:
                raise
            except ClientError as error:
                delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                attempt += 1
                voice.say(f"[{error}; reconnecting in {delay:g} s]")
                await trio.sleep(delay)
    return 0


async def _hands_free(
    voice: Voice, session: Session, conversation_id: str, lines: trio.MemoryReceiveChannel[str]
) -> None:
    args = voice.args
    await run_live_session(
        session,
        conversation_id,
        stream_command=args.stream_command,
        play_command=None if args.no_play else args.play_command,
        language=args.language,
        echo_cancellation=args.echo_cancellation,
        lines=lines,
        say=voice.say,
        stop_at_end_of_input=not _no_keyboard(),
    )
    if session.lost is not None:
        raise ClientError(session.lost)


def _no_keyboard() -> bool:
    """Standard input is a character device but no terminal: /dev/null, as under systemd."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return True
    return stat.S_ISCHR(mode) and not os.isatty(sys.stdin.fileno())


def run_voice(url: str, token: str, args: argparse.Namespace) -> int:
    voice = Voice(args, sys.stdout)
    try:
        if args.input is not None:
            return trio.run(_one_turn, voice, url, token, args.input)
        return trio.run(_live, voice, url, token, sys.stdin)
    except ClientError as error:
        print(f"pichat voice: {error}", file=sys.stderr)
        return 1
    except (OSError, UnsupportedAudio) as error:  # a missing or bad input file, no recorder
        print(f"pichat voice: {error}", file=sys.stderr)
        return 1
    except ImportError as error:  # --gpio without gpiozero
        print(
            f"pichat voice: --gpio needs gpiozero ({error}): pip install 'pichat-trio[pi]'",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
