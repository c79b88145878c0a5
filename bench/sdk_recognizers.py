"""What the Speech SDK's recognisers cost, against the fake speech endpoint.

Why live voice speaks Azure's protocol itself (``AZURE_SPEECH_STREAMING=socket``)
rather than through the SDK: this measures the CPU of this process, pinned to
one core, while N recognisers (each on a thread of its own, as the SDK's
blocking calls want) do one of three things; the fake runs in a child process
on another core.

- ``idle``: N recognisers started on push streams that get no audio, for
  ``--seconds``: what merely having them open costs;
- ``per-utterance``: each of N does ``--utterances`` utterances (1.5 s of tone
  pushed in real time, 0.9 s apart), a new recogniser for each;
- ``kept``: the same utterances on one recogniser per session, kept across
  them.

    .venv/bin/python bench/sdk_recognizers.py --sessions 100
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.cognitiveservices.speech as sdk

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
KEY = "bench-speech-key"
SPEECH = array(
    "h", (int(8000 * math.sin(2 * math.pi * 300 * n / RATE)) for n in range(int(RATE * 1.5)))
).tobytes()
BLOCK = 2 * RATE // 10  # 100 ms, as the server feeds a recogniser

_FAKE = f"""
import sys, trio
sys.path.insert(0, {str(ROOT)!r})
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech
async def main():
    async with open_fake_azure_speech(FakeAzureSpeech(key={KEY!r}, stt_text="Hello.")) as f:
        print(f.host, flush=True)
        await trio.sleep_forever()
trio.run(main)
"""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _recogniser(host: str) -> tuple[Any, Any, threading.Event]:
    config = sdk.SpeechConfig(subscription=KEY, host=host)
    stream_format = sdk.audio.AudioStreamFormat(
        samples_per_second=RATE, bits_per_sample=16, channels=1
    )
    push = sdk.audio.PushAudioInputStream(stream_format=stream_format)
    audio = sdk.audio.AudioConfig(stream=push)
    recogniser = sdk.SpeechRecognizer(speech_config=config, audio_config=audio)
    stopped = threading.Event()
    recogniser.session_stopped.connect(lambda _event: stopped.set())
    recogniser.canceled.connect(lambda _event: stopped.set())
    recogniser.start_continuous_recognition_async().get()
    return recogniser, push, stopped


def _say(push: Any) -> None:
    for start in range(0, len(SPEECH), BLOCK):
        push.write(SPEECH[start : start + BLOCK])
        time.sleep(0.1)


def _end(recogniser: Any, push: Any, stopped: threading.Event) -> None:
    push.close()
    stopped.wait(10)
    recogniser.stop_continuous_recognition_async().get()


def _per_utterance(host: str, utterances: int) -> None:
    for _ in range(utterances):
        recogniser, push, stopped = _recogniser(host)
        _say(push)
        _end(recogniser, push, stopped)
        time.sleep(0.9)


def _kept(host: str, utterances: int) -> None:
    recogniser, push, stopped = _recogniser(host)
    for _ in range(utterances):
        _say(push)
        time.sleep(0.9)
    _end(recogniser, push, stopped)


def _sessions(work: Callable[[str, int], None], host: str, n: int, utterances: int) -> str:
    threads = [threading.Thread(target=work, args=(host, utterances)) for _ in range(n)]
    started, cpu = time.monotonic(), _cpu()
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    wall, used = time.monotonic() - started, _cpu() - cpu
    return f"{used:.2f} CPU s in {wall:.1f} s ({100 * used / wall:.0f} % of a core)"


def _idle(host: str, n: int, seconds: float) -> str:
    open_ = [_recogniser(host) for _ in range(n)]
    time.sleep(2)  # the connections settle
    cpu = _cpu()
    time.sleep(seconds)
    used = _cpu() - cpu
    for recogniser, push, stopped in open_:
        _end(recogniser, push, stopped)
    return f"{used:.2f} CPU s in {seconds:g} s ({100 * used / seconds:.0f} % of a core)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long idle ones run")
    parser.add_argument("--core", type=int, default=0, help="this process's core")
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    fake_cores = {c for c in range(cpus) if c != args.core} or {args.core}
    argv = ["taskset", "-c", ",".join(map(str, sorted(fake_cores))), sys.executable, "-c", _FAKE]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as fake:
        assert fake.stdout is not None
        host = fake.stdout.readline().strip()
        try:
            n, u = args.sessions, args.utterances
            print(f"{n} recognisers, pinned to core {args.core}; the fake at {host}")
            print(f"{'idle, open':28} {_idle(host, n, args.seconds)}")
            print(f"{'a recogniser per utterance':28} {_sessions(_per_utterance, host, n, u)}")
            print(f"{'one kept per session':28} {_sessions(_kept, host, n, u)}")
        finally:
            fake.terminate()


if __name__ == "__main__":
    main()
