"""``pichat voice --live``: a hands-free voice session from the command line.

The microphone is a command that writes espeak-ng speech as raw PCM in 20 ms
pieces at the pace of real time, then silence; the player is a command that
keeps what it is given.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import wave
from pathlib import Path

import trio
from support import TOKEN, make_settings, run_server
from voice.voice_support import needs_espeak, silence, spoken

from pichat_trio.adapters.ai.echo import ECHO_NOTICE

from .terminal import WAIT, pichat_command
from .test_voice import Lines, voice_messages

pytestmark = needs_espeak

_PACER = """
import sys, time
data = open(sys.argv[1], "rb").read()
start = time.monotonic()
for i, offset in enumerate(range(0, len(data), 640)):
    time.sleep(max(0, start + i * 0.02 - time.monotonic()))
    sys.stdout.buffer.write(data[offset : offset + 640])
    sys.stdout.buffer.flush()
time.sleep(60)
"""


def _microphone(tmp_path: Path) -> str:
    raw = tmp_path / "mic.raw"
    raw.write_bytes(silence(300) + spoken("play some music please", "en-us+klatt5") + silence(2000))
    script = tmp_path / "mic.py"
    script.write_text(_PACER)
    return f"{sys.executable} {script} {raw}"


async def test_live_mode_talks_hears_and_plays_over_a_voice_session(tmp_path: Path) -> None:
    played = tmp_path / "played.wav"
    async with run_server(make_settings(tmp_path)) as server:
        process = await trio.lowlevel.open_process(
            pichat_command(
                "voice",
                "--live",
                "--url",
                server.url + "/ws",
                "--token",
                TOKEN,
                "--stream-command",
                _microphone(tmp_path),
                "--play-command",
                f"sh -c 'cat >> {played}'",
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        out = Lines(process.stdout)
        await out.expect("[listening (offline)")
        await out.expect("[hearing: ")
        await out.expect("you> ")
        await out.expect("pichat> ")
        await out.expect("You said: ")
        await out.expect("[spoken: ")
        await process.stdin.aclose()  # end of input: voice_stop, and the client leaves
        with trio.fail_after(WAIT):
            assert await process.wait() == 0
        stored = await voice_messages(server)
    [messages] = stored.values()
    user, assistant = messages
    assert user["is_audio"] and user["audio_file"] and "music" in user["content"]
    assert assistant["role"] == "assistant" and assistant["content"].startswith(ECHO_NOTICE)
    # End of input comes as the last chunk arrives, while the client still plays
    # it; if a voice_playback report (4 a second) went out before, the answer is
    # stored as heard by it, else as generated.
    assert assistant["status"] in {"complete", "interrupted"}
    with wave.open(str(played)) as wav:  # a WAV stream of the answer's chunks
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert len(wav.readframes(16000)) == 32000  # a second of it at least


async def test_without_a_keyboard_the_live_session_outlives_the_end_of_input(
    tmp_path: Path,
) -> None:
    """Under systemd stdin is /dev/null: its end must not end the session at once."""
    async with run_server(make_settings(tmp_path)) as server:
        process = await trio.lowlevel.open_process(
            pichat_command(
                "voice",
                "--live",
                "--no-play",
                "--url",
                server.url + "/ws",
                "--token",
                TOKEN,
                "--stream-command",
                _microphone(tmp_path),
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        try:
            out = Lines(process.stdout)
            await out.expect("you> ")
            await out.expect("[spoken: ")
            assert process.returncode is None  # still listening
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl-C: the client stops its microphone
            try:
                with trio.fail_after(WAIT):
                    code = await process.wait()  # and with it its microphone command
            finally:
                if process.returncode is None:  # a failed test leaves no client behind
                    process.kill()
                    await process.wait()
        assert code == 130  # as a shell reports a program stopped by Ctrl-C
