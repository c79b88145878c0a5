"""Voice sessions over loopback: end of speech, first audio, barge-in, concurrency.

The server runs with its AI pointed at the fake Azure OpenAI (a
five-sentence answer, ``--token-rate`` tokens a second) and either the
offline engines (pocketsphinx, espeak-ng) or Azure Speech through the real
SDK against the fake endpoint (``--engine azure``). Clients stream
espeak-ng speech in 20 ms frames at the pace of real time and report:

- final transcript: from sending the last frame the server's detector calls
  speech (found by running the same detector over the clip) to the final
  ``voice_transcript`` (target: ``silence_ms`` + 300 ms, p95);
- first audio: from the token that completes the answer's first sentence
  (the next token, which tells "3." from "3.14", arrives later still) to the
  first ``voice_audio`` (target 400 ms, p95), and whether two chunks came
  before the answer finished;
- barge-in: from ``voice_interrupt`` sent to the last ``voice_audio`` of that
  answer received, and to the fake AI seeing its request closed (100 ms);
- ``--sessions N``: N sessions at once, the server in a child process pinned
  to one core (``taskset``), each doing ``--turns`` turns; the final
  transcript figures and how many turns completed show whether it keeps up.

    .venv/bin/python bench/voice_sessions.py                       # offline, latencies
    .venv/bin/python bench/voice_sessions.py --engine azure
    .venv/bin/python bench/voice_sessions.py --engine azure --sessions 100 --turns 6 --stagger 0.1 \
        --interrupt-every 0                                        # all 100 at once
    .venv/bin/python bench/voice_sessions.py --sessions 4 --turns 2
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pichat_trio.adapters.speech.pcm import resample_slice, resampled_length  # noqa: E402
from pichat_trio.adapters.speech.vad import WebRtcVoiceDetector  # noqa: E402
from pichat_trio.client import Client, open_client  # noqa: E402
from pichat_trio.fakes.azure_openai import Behaviour, FakeAzureOpenAI  # noqa: E402
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech  # noqa: E402
from pichat_trio.server import serve  # noqa: E402
from pichat_trio.settings import load_settings  # noqa: E402
from pichat_trio.wav import parse_wav  # noqa: E402

RATE = 16000
TOKEN = "bench-token-0123456789abcdef"
VOICE = "en-us+klatt5"
PHRASE = "play some music please"
WORDS = [
    *("One", " is", " first.", " Two", " comes", " next.", " Three", " is", " here."),
    *(" Four", " is", " near.", " Five", " ends", " it."),
]
FRAME_MS: float = 40  # as this project's clients send (--frame-ms)
SILENCE_MS = 600


def _keep_off_core(core: int) -> None:
    """This process (the clients and the fakes) runs on the other cores: the server's
    core is its own, and what the generator costs shows in its own line."""
    cpus = set(range(os.cpu_count() or 1)) - {core}
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cpus)


def _own_cpu() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


@functools.cache
def spoken(text: str, voice: str) -> bytes:
    """``text`` said by espeak-ng, as 16 kHz mono PCM (made once: every turn says the
    same, and making it costs the load generator more than sending it)."""
    argv = ["espeak-ng", "-v", voice, "--stdout", text]
    wav = subprocess.run(argv, capture_output=True, check=True).stdout
    pcm = parse_wav(wav, max_seconds=600.0, max_bytes=1 << 30)
    return resample_slice(pcm, RATE, 0, resampled_length(pcm, RATE))


@functools.cache
def last_voiced_byte(pcm: bytes) -> int:
    """Where the last frame the server's detector calls speech ends, in bytes."""
    detector = WebRtcVoiceDetector(RATE)
    size = 2 * detector.frame_samples
    last = 0
    for offset in range(0, len(pcm) - size + 1, size):
        if detector.is_speech(pcm[offset : offset + size]):
            last = offset + size
    return last


def silence(ms: int) -> bytes:
    return bytes(2 * RATE * ms // 1000)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _line(name: str, values: list[float], target: float | None = None) -> str:
    if not values:
        return f"{name:34} no samples"
    verdict = "" if target is None else ("  ok" if _p95(values) <= target else "  OVER")
    return (
        f"{name:34} n={len(values):4}  median {statistics.median(values):7.1f} ms  "
        f"p95 {_p95(values):7.1f} ms" + ("" if target is None else f"  (<= {target:g})") + verdict
    )


class Turn:
    def __init__(self) -> None:
        self.final_ms: float | None = None
        self.first_audio_ms: float | None = None
        self.chunks_before_finish = 0
        self.interrupt_to_last_audio_ms: float | None = None
        self.interrupted_at: float | None = None
        self.done = False


def _env(
    tmp: Path, engine: str, ai: FakeAzureOpenAI, speech: FakeAzureSpeech | None
) -> dict[str, str]:
    env = {
        "ENVIRONMENT": "development",
        "API_TOKEN": TOKEN,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "SERVER_HOST": "127.0.0.1",
        "SERVER_PORT": "0",
        "AUDIO_DIR": str(tmp / "audio"),
        "AI_PROVIDER": "azure",
        "AZURE_OPENAI_ENDPOINT": ai.endpoint,
        "AZURE_OPENAI_KEY": ai.api_key,
        "AZURE_OPENAI_DEPLOYMENT_GPT4": "gpt-4",
        "AZURE_OPENAI_DEPLOYMENT_GPT35": "gpt-35-turbo",
        "MAX_CONNECTIONS_PER_USER": "1000",
        "USER_RATE_LIMIT_PER_SECOND": "100000",
        "USER_RATE_LIMIT_BURST": "100000",
        "MAX_GENERATIONS_PER_USER": "1000",
        "LOG_LEVEL": "WARNING",
    }
    if engine == "azure" and speech is not None:
        env |= {"AZURE_SPEECH_KEY": speech.key, "AZURE_SPEECH_ENDPOINT": speech.host}
    return env


@asynccontextmanager
async def _fakes(args: argparse.Namespace) -> AsyncIterator[tuple[FakeAzureOpenAI, Any]]:
    ai = FakeAzureOpenAI(words=WORDS, behaviour=Behaviour(tokens=len(WORDS), rate=args.token_rate))
    speech_fake = FakeAzureSpeech(key="bench-speech-key", stt_text="Play some music, please.")
    async with trio.open_nursery() as nursery:
        await nursery.start(ai.serve)
        async with open_fake_azure_speech(speech_fake) as speech:
            yield ai, speech
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def _in_process(env: dict[str, str]) -> AsyncIterator[str]:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            partial(serve, load_settings(env, env_file=None), shutdown_trigger=stop.wait)
        )
        yield url.replace("http", "ws", 1)
        stop.set()


class ServerUse:
    """The server process's CPU over the sessions, and its threads (sampled each second)."""

    def __init__(self, core: int) -> None:
        self.core = core
        self.core_start = self.core_end = 0.0  # the core's busy time, every process's
        self.process: psutil.Process | None = None
        self.cpu_start = self.cpu_end = 0.0
        self.main_start = self.main_end = 0.0  # the event loop's thread
        self.wall_start = self.wall_end = 0.0
        self.threads_max = 0
        self.own_start = self.own_end = 0.0  # this process: the clients and the fakes

    def start(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.own_start = _own_cpu()
        self.cpu_start, self.wall_start = self._cpu(), trio.current_time()
        self.main_start = self._main()
        self.core_start = self._core_busy()

    def stop(self) -> None:
        if self.process is not None:
            self.cpu_end, self.wall_end = self._cpu(), trio.current_time()
            self.own_end = _own_cpu()
            self.main_end = self._main()
            self.core_end = self._core_busy()

    def _core_busy(self) -> float:
        times = psutil.cpu_times(percpu=True)[self.core]
        return float(times.user + times.nice + times.system + times.irq + times.softirq)

    def _main(self) -> float:
        assert self.process is not None
        pid = self.process.pid
        mine = [t for t in self.process.threads() if t.id == pid]
        return float(sum(t.user_time + t.system_time for t in mine))

    def _cpu(self) -> float:
        assert self.process is not None
        times = self.process.cpu_times()
        return float(times.user + times.system)

    async def sample(self) -> None:
        while self.process is not None and self.process.is_running():
            with contextlib.suppress(psutil.Error):
                self.threads_max = max(self.threads_max, self.process.num_threads())
            await trio.sleep(1)

    def line(self) -> str:
        wall = self.wall_end - self.wall_start
        cpu = self.cpu_end - self.cpu_start
        main = self.main_end - self.main_start
        others = max(0.0, self.core_end - self.core_start - cpu)
        if wall <= 0:
            return ""
        own = self.own_end - self.own_start
        bound = ": client-bound, the latencies are the generator's" if own > 0.9 * wall else ""
        return (
            f"{'server CPU over the sessions':34} {cpu:.1f} s in {wall:.1f} s "
            f"({100 * cpu / wall:.0f} % of its core; event loop thread {main:.1f} s, "
            f"other threads {cpu - main:.1f} s), threads at most {self.threads_max}\n"
            f"{'other processes on that core':34} {others:.1f} s "
            f"({100 * others / wall:.0f} %: the machine's other work, which the server waits for)\n"
            f"{'load generator (clients, fakes)':34} {own:.1f} s "
            f"({100 * own / wall:.0f} % of a core{bound})"
        )


@asynccontextmanager
async def _child(env: dict[str, str], core: int, use: ServerUse) -> AsyncIterator[str]:
    """``pichat serve`` in a child process pinned to ``core``; its ws:// URL."""
    argv = [sys.executable, "-m", "pichat_trio", "serve"]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", str(core), *argv]
    env = {**os.environ, **env, "LOG_LEVEL": "INFO", "LOG_FORMAT": "text"}
    process = await trio.lowlevel.open_process(
        argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    url, buffer = "", b""
    with trio.fail_after(60):
        while not url:
            chunk = await process.stderr.receive_some()
            if not chunk:
                raise RuntimeError("the server exited: " + buffer.decode()[-2000:])
            buffer += chunk
            text = buffer.decode(errors="replace")
            if " listening on " in text:
                url = text.split(" listening on ", 1)[1].split()[0]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_drain, process.stderr)
        use.start(process.pid)  # taskset execs the server: the same process
        nursery.start_soon(use.sample)
        try:
            yield url.replace("http", "ws", 1)
        finally:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(30):
                await process.wait()
            nursery.cancel_scope.cancel()


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    """The server's log lines: warnings and errors are printed."""
    buffer = b""
    async for chunk in stream:
        *lines, rest = (buffer + chunk).split(b"\n")
        buffer = rest
        for line in lines:
            if b"WARNING" in line or b"ERROR" in line or b"Traceback" in line:
                print("server:", line.decode(errors="replace")[:300], file=sys.stderr)


async def _microphone(client: Client, pcm: bytes, clock: dict[str, float]) -> None:
    frame_ms = clock["frame_ms"]
    size = int(2 * RATE * frame_ms) // 1000
    start = trio.current_time()
    for index, offset in enumerate(range(0, len(pcm), size)):
        # frames at their real-time instants, whatever the scheduler did before
        await trio.sleep_until(start + index * frame_ms / 1000)
        await client.send_raw(pcm[offset : offset + size])
        if offset + size >= clock["voiced_end_byte"] and "voiced_end" not in clock:
            clock["voiced_end"] = trio.current_time()


async def _turn(
    client: Client, voice: dict[str, Any], interrupt: bool, ai: FakeAzureOpenAI
) -> Turn:
    turn = Turn()
    speech = spoken(PHRASE, VOICE)
    lead = silence(300)
    audio = lead + speech + silence(SILENCE_MS + 900)
    clock: dict[str, float] = {
        "voiced_end_byte": len(lead) + last_voiced_byte(speech),
        "frame_ms": voice["frame_ms"],  # the bench's own entry, not the server's
    }
    first_sentence_at: float | None = None
    text = ""
    message_id = ""
    interrupted_at: float | None = None
    chunks = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_microphone, client, audio, clock)
        while True:
            frame = await client.receive()
            action, payload = frame["action"], frame["payload"]
            now = trio.current_time()
            if action == "voice_transcript" and payload["final"] and turn.final_ms is None:
                turn.final_ms = 1000 * (now - clock.get("voiced_end", now))
            elif (
                action == "message_stream"
                and payload["conversation_id"] != voice["conversation_id"]
            ):
                continue  # (a session's own user has no other conversation going)
            elif action == "message_stream" and not payload["finished"]:
                text += payload["token"]
                if first_sentence_at is None and "." in text:
                    first_sentence_at = now
            elif action == "message_stream" and payload["finished"]:
                turn.chunks_before_finish = chunks
                if interrupt:
                    break
            elif action == "voice_audio" and not payload["final"]:
                chunks += 1
                message_id = payload["message_id"]
                if interrupted_at is not None:
                    turn.interrupt_to_last_audio_ms = 1000 * (now - interrupted_at)
                if turn.first_audio_ms is None and first_sentence_at is not None:
                    turn.first_audio_ms = 1000 * (now - first_sentence_at)
                if interrupt and chunks == 2 and interrupted_at is None:
                    interrupted_at = turn.interrupted_at = trio.current_time()
                    turn.interrupt_to_last_audio_ms = 0.0
                    await client.request(
                        "voice_interrupt",
                        {"voice_id": voice["voice_id"], "message_id": message_id, "played_ms": 1},
                    )
            elif action == "voice_audio" and payload["final"]:
                break
        nursery.cancel_scope.cancel()
    turn.done = True
    return turn


async def _session_or_report(*args: Any) -> None:
    try:
        await _session(*args)
    except Exception as error:  # one lost session is a figure, not the end of the run
        print(f"session failed: {error!r}", file=sys.stderr)


def _tokens(env: dict[str, str], count: int) -> list[str]:
    """A user per session (``pichat users add``): no session sees another's answers."""
    names = [f"voice{i}" for i in range(count)]
    argv = [sys.executable, "-m", "pichat_trio", "users", "add", *names]
    out = subprocess.run(argv, env={**os.environ, **env}, check=True, capture_output=True)
    return [line.split()[1] for line in out.stdout.decode().splitlines()]


class Concurrency:
    """Sessions open at once: the figure "N sessions" means only if they overlap."""

    def __init__(self) -> None:
        self.now = self.most = 0

    @contextlib.contextmanager
    def open(self) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            yield
        finally:
            self.now -= 1


async def _session(
    token: str,
    url: str,
    ai: FakeAzureOpenAI,
    turns: int,
    interrupt_every: int,
    out: list[Turn],
    upstream: list[float] | None,
    concurrency: Concurrency,
    frame_ms: float,
) -> None:
    async with open_client(url, token) as client:
        reply = await client.call("voice_start", {"sample_rate": RATE, "silence_ms": SILENCE_MS})
        voice = {**reply["payload"], "frame_ms": frame_ms}
        with concurrency.open():
            await _turns(client, voice, ai, turns, interrupt_every, out, upstream)


async def _turns(
    client: Client,
    voice: dict[str, Any],
    ai: FakeAzureOpenAI,
    turns: int,
    interrupt_every: int,
    out: list[Turn],
    upstream: list[float] | None,
) -> None:
    for index in range(turns):
        interrupt = interrupt_every > 0 and index % interrupt_every == interrupt_every - 1
        sent_before = len(ai.requests)
        turn = await _turn(client, voice, interrupt, ai)
        out.append(turn)
        if upstream is not None and interrupt and turn.interrupt_to_last_audio_ms is not None:
            # the request this turn made: the first one after ``sent_before`` (one session
            # only: with several, another's request may come first)
            request = await ai.wait_disconnected(sent_before)
            if request.disconnected_at is not None and turn.interrupted_at is not None:
                upstream.append(1000 * (request.disconnected_at - turn.interrupted_at))
        await trio.sleep(0.3)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with _fakes(args) as (ai, speech):
            env = _env(Path(tmp), args.engine, ai, speech)
            child = args.sessions > 1
            if child:
                _keep_off_core(args.core)
            tokens = _tokens(env, args.sessions)
            use = ServerUse(args.core)
            runner = _child(env, args.core, use) if child else _in_process(env)
            async with runner as url:
                out: list[Turn] = []
                upstream: list[float] = []
                concurrency = Concurrency()
                async with trio.open_nursery() as nursery:
                    for token in tokens:
                        nursery.start_soon(
                            _session_or_report,
                            token,
                            url,
                            ai,
                            args.turns,
                            args.interrupt_every,
                            out,
                            upstream if args.sessions == 1 else None,
                            concurrency,
                            args.frame_ms,
                        )
                        await trio.sleep(args.stagger)
                use.stop()
    finals = [t.final_ms for t in out if t.final_ms is not None]
    firsts = [t.first_audio_ms for t in out if t.first_audio_ms is not None]
    barge = [t.interrupt_to_last_audio_ms for t in out if t.interrupt_to_last_audio_ms is not None]
    print(
        f"engine {args.engine}, {args.sessions} session(s) x {args.turns} turns, "
        f"token rate {args.token_rate}/s, silence_ms {SILENCE_MS}, {args.frame_ms:g} ms frames"
        + (f", server pinned to core {args.core}" if args.sessions > 1 else "")
    )
    print(f"turns completed: {sum(t.done for t in out)} of {args.sessions * args.turns}")
    print(f"{'sessions at once':34} at most {concurrency.most}")
    print(_line("final transcript after speech", finals, SILENCE_MS + 300))
    print(_line("first voice_audio after sentence 1", firsts, 400))
    full = [t for t in out if t.interrupt_to_last_audio_ms is None]
    early = sum(t.chunks_before_finish >= 2 for t in full)
    print(f"{'two chunks before finished':34} {early} of {len(full)} uninterrupted turns")
    print(_line("interrupt -> last audio received", barge, 100))
    if args.sessions == 1:
        print(_line("interrupt -> AI request closed", upstream, 100))
    else:
        print(f"{'interrupt -> AI request closed':34} measured with one session only")
    if use.line():
        print(use.line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("offline", "azure"), default="offline")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--interrupt-every", type=int, default=2)
    parser.add_argument("--token-rate", type=float, default=10.0)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument(
        "--stagger", type=float, default=0.25, help="seconds between sessions' starts"
    )
    parser.add_argument(
        "--frame-ms",
        type=float,
        default=FRAME_MS,
        help=f"length of each microphone frame sent (default {FRAME_MS:g}, as the clients)",
    )
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
