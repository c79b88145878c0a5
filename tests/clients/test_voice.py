"""``pichat voice``: one turn with a WAV file, the live loop, reconnection, GPIO."""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import wave
from pathlib import Path

import pytest
import trio
from speech.speech_support import needs_espeak
from support import TOKEN, make_settings, run_server, serve_until_stopped

from pichat_trio.adapters.ai.echo import ECHO_NOTICE

from .terminal import WAIT, pichat_command

pytestmark = needs_espeak

SAID = "hello what is the weather like today"


def spoken(tmp_path: Path) -> Path:
    path = tmp_path / "spoken.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "140", "-w", str(path), SAID], check=True)
    return path


async def voice_messages(server):
    async with server.client() as client:
        listed = await client.call("get_conversations")
        found = {}
        for conversation in listed["payload"]["conversations"]:
            reply = await client.call("get_messages", {"conversation_id": conversation["id"]})
            found[conversation["id"]] = reply["payload"]["messages"]
        return found


async def test_one_turn_with_a_wav_file_writes_the_spoken_answer(tmp_path):
    recording = spoken(tmp_path)
    out = tmp_path / "out"
    async with run_server(make_settings(tmp_path)) as server:
        with trio.fail_after(WAIT):
            done = await trio.run_process(
                pichat_command(
                    "voice",
                    "--url",
                    server.url + "/ws",
                    "--input",
                    str(recording),
                    "--output-dir",
                    str(out),
                ),
                env={"PICHAT_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        assert done.returncode == 0, done.stderr
        stored = await voice_messages(server)
    text = done.stdout.decode()
    [messages] = stored.values()
    user, assistant = messages
    assert user["role"] == "user" and user["is_audio"] is True and user["audio_file"]
    assert "weather" in user["content"]  # what the offline recogniser heard
    assert f"you> {user['content']}\n" in text
    assert f"pichat> {ECHO_NOTICE} You said: {user['content']}\n" in text
    assert assistant["content"] == f"{ECHO_NOTICE} You said: {user['content']}"
    [written] = out.iterdir()
    assert written.name == f"answer-{assistant['id']}.wav"
    assert f"[speech written to {written}]" in text
    with wave.open(str(written)) as wav:  # the stdlib's reader: a whole, valid file
        assert wav.getsampwidth() == 2 and wav.getnframes() > wav.getframerate()  # > 1 s
        frames = wav.readframes(wav.getnframes())
    assert len(frames) == wav.getnframes() * 2 * wav.getnchannels()
    assert written.stat().st_size == 44 + len(frames)


async def test_a_recording_with_nothing_said_is_not_sent(tmp_path):
    silence = tmp_path / "silence.wav"
    with wave.open(str(silence), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(32000))
    async with run_server(make_settings(tmp_path)) as server:
        with trio.fail_after(WAIT):
            done = await trio.run_process(
                pichat_command(
                    "voice", "--url", server.url + "/ws", "--token", TOKEN, "--input", str(silence)
                ),
                capture_stdout=True,
                check=False,
            )
        assert done.returncode == 1
        assert b"[nothing was heard]" in done.stdout
        stored = await voice_messages(server)
    assert [m for messages in stored.values() for m in messages] == []


class Lines:
    """What a live client prints, for a test to wait on."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.text = ""
        self.seen = 0

    async def expect(self, text: str) -> None:
        with trio.fail_after(WAIT):
            while text not in self.text[self.seen :]:
                data = await self.stream.receive_some(4096)
                assert data, f"no {text!r} in:\n{self.text}"
                self.text += data.decode()
        self.seen = self.text.index(text, self.seen) + len(text)


async def test_the_live_loop_talks_plays_and_reconnects_after_a_restart(tmp_path):
    recording = spoken(tmp_path)
    played = tmp_path / "played"
    settings = make_settings(tmp_path)
    async with trio.open_nursery() as nursery:
        first = await nursery.start(serve_until_stopped, settings)
        port = int(first.url.rsplit(":", 1)[1])
        process = await trio.lowlevel.open_process(
            pichat_command(
                "voice",
                "--url",
                first.url + "/ws",
                "--token",
                TOKEN,
                "--seconds",
                "30",
                "--record-command",
                f"cat {recording}",
                "--play-command",
                f"sh -c 'cat >> {played}'",
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        out = Lines(process.stdout)
        await out.expect("[press Enter and talk for 30 s]")
        await process.stdin.send_all(b"\n")
        await out.expect("[recording…]")
        await out.expect(f"pichat> {ECHO_NOTICE} You said: ")
        await out.expect("[press Enter and talk for 30 s]")
        with wave.open(str(played)) as wav:  # what went to the player: the spoken answer
            assert wav.getnchannels() == 1 and wav.getsampwidth() == 2

        first.stop()  # a restart: the client waits, then comes back on its own
        await out.expect("the connection to the server was lost")
        await out.expect("reconnecting in")
        second = await nursery.start(
            serve_until_stopped, make_settings(tmp_path, {"SERVER_PORT": str(port)})
        )
        await out.expect("[connected to")
        await out.expect("[press Enter and talk for 30 s]")
        await process.stdin.send_all(b"\n")
        await out.expect(f"pichat> {ECHO_NOTICE} You said: ")
        await out.expect("[press Enter")
        await process.stdin.aclose()  # end of input: the client leaves
        with trio.fail_after(WAIT):
            assert await process.wait() == 0
        stored = await voice_messages(second)
        second.stop()
    [messages] = stored.values()  # one conversation, kept across the restart
    users = [m for m in messages if m["role"] == "user"]
    assert len(users) == 2 and all(m["is_audio"] for m in users)


class Screen(io.StringIO):
    """The in-process client's output, with an event per line printed."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = trio.Event()

    def write(self, text: str) -> int:
        self.changed.set()
        self.changed = trio.Event()
        return super().write(text)

    async def expect(self, text: str) -> None:
        with trio.fail_after(WAIT):
            while text not in self.getvalue():
                await self.changed.wait()


async def test_a_gpio_button_is_push_to_talk(tmp_path):
    """Held down it records, released it sends (gpiozero's mock pins stand in for the Pi's)."""
    pytest.importorskip("gpiozero")
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from pichat_trio.clients.voice import Voice, _live

    recording = spoken(tmp_path)
    recorded = tmp_path / "recorded.fifo"  # the recorder says when it has given it all
    os.mkfifo(recorded)
    Device.pin_factory = MockFactory()
    try:
        async with run_server(make_settings(tmp_path)) as server:
            args = argparse.Namespace(
                conversation=None,
                output_dir=tmp_path / "out",
                no_play=True,
                language=None,
                seconds=None,
                gpio=17,
                play_command="true",
                live=False,
                record_command=f"sh -c 'cat {recording}; echo > {recorded}; exec sleep 60'",
            )
            screen = Screen()
            pin = Device.pin_factory.pin(17)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    _live, Voice(args, screen), server.url + "/ws", TOKEN, io.StringIO()
                )
                await screen.expect("[hold the button and talk]")
                await trio.to_thread.run_sync(pin.drive_low)  # pressed (pulled up)
                await screen.expect("[recording…]")
                await trio.to_thread.run_sync(recorded.read_bytes)  # all said
                await trio.to_thread.run_sync(pin.drive_high)  # released: sent
                await screen.expect(f"pichat> {ECHO_NOTICE} You said: ")
                await screen.expect("[speech written to")
                nursery.cancel_scope.cancel()
            stored = await voice_messages(server)
    finally:
        Device.pin_factory.close()
        Device.pin_factory = None
    [messages] = stored.values()
    assert messages[0]["is_audio"] is True and "weather" in messages[0]["content"]


async def test_playback_starts_with_the_first_chunk(tmp_path):
    """The player has the first chunk's sound before the second chunk exists."""
    from pichat_trio.clients.audio import Player

    heard = tmp_path / "heard.fifo"
    os.mkfifo(heard)
    played = tmp_path / "played.wav"
    first = b"RIFF\xff\xff\xff\xffWAVE" + bytes(100)

    async def chunks():
        yield first
        # Blocks until the play command has passed the first chunk on: only then is there
        # a second one, as when speech is still being synthesised.
        assert await trio.to_thread.run_sync(heard.read_bytes) == first
        yield b"\x01\x00" * 50

    command = f"sh -c 'head -c {len(first)} > {heard}; cat > {played}'"
    with trio.fail_after(WAIT):
        whole = await Player(command).play(chunks())
    assert whole == first + b"\x01\x00" * 50
    assert played.read_bytes() == b"\x01\x00" * 50
