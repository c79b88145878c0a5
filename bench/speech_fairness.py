"""How long another user's short clip waits while one user floods offline STT.

Starts the real server (offline speech, SQLite in a temporary directory) on
127.0.0.1, makes two users, and has Alice send ``--clips`` clips of
``--seconds`` s at 48 kHz (speech: the server's own voice reading a text
over and over) over two connections, all at once. While they decode, Bob
sends a 0.1 s clip ``--probes`` times, one after another, and the script
prints how long each of Bob's answers took, and how long Alice's took.

    .venv/bin/python bench/speech_fairness.py            # 8 clips of 60 s
    .venv/bin/python bench/speech_fairness.py --clips 2 --seconds 10

The bar (issue: a 0.1 s clip waited 10.9 s behind eight 60 s clips) is that
Bob's answer comes within 5 s, however many clips Alice has queued.
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import tempfile
import time
import wave
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pichat_trio.client import Client, open_client  # noqa: E402
from pichat_trio.server import serve  # noqa: E402
from pichat_trio.settings import load_settings  # noqa: E402

TOKEN = "bench-speech-token-0123456789"
TEXT = "the quick brown fox jumps over the lazy dog while the weather stays fine. "
RATE = 48000


def _wav(frames: bytes, rate: int) -> str:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(frames)
    return base64.b64encode(out.getvalue()).decode()


async def _speech(client: Client, seconds: float) -> str:
    """``seconds`` of the server's voice at 48 kHz (repeated, upsampled by sox)."""
    reply = await client.call("text_to_speech", {"text": TEXT * 4})
    with wave.open(io.BytesIO(base64.b64decode(reply["payload"]["audio_data"]))) as reader:
        rate, frames = reader.getframerate(), reader.readframes(reader.getnframes())
    done = await trio.run_process(
        ["sox", "-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16", "-c", "1", "-",
         "-t", "raw", "-r", str(RATE), "-"],
        stdin=frames,
        capture_stdout=True,
    )  # fmt: skip
    needed = int(seconds * RATE) * 2
    audio = done.stdout * (needed // len(done.stdout) + 1)
    return _wav(audio[:needed], RATE)


async def _alice(client: Client, clip: str, count: int, took: list[float]) -> None:
    started = time.monotonic()
    ids = {await client.request("speech_to_text", {"audio_data": clip}) for _ in range(count)}
    while ids:
        frame = await client.receive()
        if frame.get("request_id") in ids:
            ids.discard(frame["request_id"])
            took.append(time.monotonic() - started)
            if frame["action"] != "speech_to_text_result":
                print("  alice:", frame["payload"].get("code"), frame["payload"].get("message"))


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            {
                "API_TOKEN": TOKEN,
                "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
                "SERVER_HOST": "127.0.0.1",
                "SERVER_PORT": "0",
                "AUDIO_DIR": f"{tmp}/audio",
                "MAX_FRAME_BYTES": str(16 * 1024 * 1024),
                "SPEECH_QUEUE_PER_USER": str(args.clips),
                "SPEECH_TIMEOUT": "600",
            },
            env_file=None,
        )
        stop = trio.Event()
        apps: list[Any] = []
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve, settings, shutdown_trigger=stop.wait, on_app=apps.append)
            )
            (_, alice), (_, bob) = apps[0].db.repository.add_users(["alice", "bob"])
            ws = url.replace("http", "ws", 1)
            async with (
                open_client(ws, alice, max_message_size=64 << 20) as a1,
                open_client(ws, alice, max_message_size=64 << 20) as a2,
                open_client(ws, bob) as b,
            ):
                clip = await _speech(a1, args.seconds)
                short = _wav(bytes(int(0.1 * 16000) * 2), 16000)
                await b.call("speech_to_text", {"audio_data": short})  # the model is loaded
                alice_took: list[float] = []
                bob_took: list[float] = []
                async with trio.open_nursery() as clients:
                    half = args.clips // 2
                    clients.start_soon(_alice, a1, clip, args.clips - half, alice_took)
                    clients.start_soon(_alice, a2, clip, half, alice_took)
                    await trio.sleep(1)  # Alice's clips are queued and decoding
                    for _ in range(args.probes):
                        started = time.monotonic()
                        reply = await b.call("speech_to_text", {"audio_data": short})
                        bob_took.append(time.monotonic() - started)
                        assert reply["action"] == "speech_to_text_result", reply
                        await trio.sleep(args.pause)
                    print(f"bob: a 0.1 s clip, {args.probes} times while Alice's clips decode")
                    print(
                        f"  answered within (s): median {statistics.median(bob_took):.2f}, "
                        f"max {max(bob_took):.2f}  (bar: 5 s)",
                        flush=True,
                    )
            stop.set()
        print(f"alice: {args.clips} clips of {args.seconds:g} s at {RATE} Hz, sent at once")
        print("  answered after (s): " + ", ".join(f"{t:.1f}" for t in sorted(alice_took)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8, help="Alice's clips (default 8)")
    parser.add_argument("--seconds", type=float, default=60, help="length of each (default 60)")
    parser.add_argument("--probes", type=int, default=10, help="Bob's clips (default 10)")
    parser.add_argument("--pause", type=float, default=2, help="s between Bob's clips")
    trio.run(main, parser.parse_args())
