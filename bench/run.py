"""PiChat load benchmarks: start everything on loopback, run a scenario, report, stop.

    .venv/bin/python bench/run.py --users 200 --tokens 500 --rate 50 --messages 2
    .venv/bin/python bench/run.py --preset table          # every figure of bench/README.md
    .venv/bin/python bench/run.py --sweep 25,50,100,200,400 --plot bench/latency.png

What it starts, all on 127.0.0.1, and stops again: the fake Azure OpenAI
(``bench/upstream.py``), a ``pichat serve`` process on a fresh SQLite file
with users made by one ``pichat users add`` call, and load processes
(``bench/load.py``). The server is pinned to core 0 (``taskset -c 0``), the
upstream and the load to core 1, so figures are per server core. Server CPU
seconds and peak RSS come from ``/proc`` (psutil) while the load runs.

``--sink public`` serves every frame through ASGI's ``send`` alone
(``FRAME_SINK=public``), so the fast path's gain over it is measured.

``--compare-url ws://HOST:PORT --compare-tokens FILE`` runs the same
scenario against another server of the same protocol (FILE: ``NAME TOKEN``
lines, as ``pichat users add`` prints; ``--compare-pid`` to measure its CPU
and memory). Point that server at ``--upstream-port`` to share the fake.

Each figure is the median of ``--repeat`` runs (3 by default), every run
with a fresh server. The table goes to stdout, everything to ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
TOKEN = "bench-api-token-0123456789"
SERVER_CORE = "0"
LOAD_CORE = "1"

PRESETS: dict[str, dict[str, Any]] = {
    # name: flag values; "table" runs the ones listed in TABLE
    "stream200": {"users": 200, "tokens": 500, "rate": 50, "messages": 2},
    "stream400": {"users": 400, "tokens": 500, "rate": 50, "messages": 2},
    "stream200-staggered": {"users": 200, "tokens": 500, "rate": 50, "messages": 2, "stagger": 2},
    "rate0": {"users": 20, "tokens": 500, "rate": 0, "messages": 10},
    "idle10k": {"idle": 10000, "heartbeat": 5, "hold": 20, "workers": 2},
    "ttft": {"users": 1, "tokens": 20, "rate": 0, "messages": 100},
    "abort200": {"users": 200, "tokens": 500, "rate": 50, "messages": 1, "disconnect": 20},
    "fanout": {"users": 50, "devices": 4, "tokens": 500, "rate": 50, "messages": 2},
    "slow": {"users": 100, "slow": 10, "tokens": 500, "rate": 50, "messages": 2},
}
TABLE = ["stream200", "stream400", "rate0", "ttft", "abort200", "fanout", "slow", "idle10k"]


# ------------------------------------------------------------- processes


def _pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv]


@contextlib.contextmanager
def _process(argv: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(argv, text=True, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _read_port(proc: subprocess.Popen[str]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        raise RuntimeError(f"the upstream did not start: {line!r}")
    return int(line.split()[1])


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not become healthy")


def base_env(db: Path, port: int) -> dict[str, str]:
    """The environment of a benchmark's ``pichat serve``: a fresh SQLite file, loopback."""
    env = dict(os.environ)
    env.update(
        {
            "ENVIRONMENT": "development",
            "API_TOKEN": TOKEN,
            "DATABASE_URL": f"sqlite:///{db}",
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": str(port),
            "AUDIO_DIR": str(db.parent / "audio"),
        }
    )
    return env


def _server_env(
    args: argparse.Namespace, db: Path, upstream_port: int, port: int
) -> dict[str, str]:
    env = base_env(db, port)
    env.update(
        {
            "AI_PROVIDER": "azure",
            "AZURE_OPENAI_ENDPOINT": f"http://127.0.0.1:{upstream_port}",
            "AZURE_OPENAI_KEY": "fake-key",
            "AZURE_OPENAI_DEPLOYMENT_GPT4": "gpt-4",
            "AZURE_OPENAI_DEPLOYMENT_GPT35": "gpt-35-turbo",
            "RATE_LIMIT_PER_SECOND": "1000",
            "RATE_LIMIT_BURST": "1000",
            # The load is many devices per user (idle10k: 200 each): limits per user off.
            "MAX_CONNECTIONS_PER_USER": "1000000",
            "MAX_GENERATIONS_PER_USER": "100000",
            "USER_RATE_LIMIT_PER_SECOND": "1000000",
            "USER_RATE_LIMIT_BURST": "1000000",
            "LOG_LEVEL": "WARNING",
            "HEARTBEAT_INTERVAL": str(args.heartbeat),
            "HEARTBEAT_TIMEOUT": str(max(3 * args.heartbeat, 60)),
            "FRAME_SINK": args.sink,
        }
    )
    for item in args.server_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _add_users(env: dict[str, str], count: int) -> list[dict[str, str]]:
    names = [f"u{i}" for i in range(count)]
    out = subprocess.run(
        [PYTHON, "-m", "pichat_trio", "users", "add", *names],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    users = []
    for line in out.splitlines():
        name, token = line.split()
        users.append({"name": name, "token": token})
    return users


class Sampler:
    """CPU seconds and peak RSS of one process (and its children), sampled every 0.1 s."""

    def __init__(self, pid: int | None, absolute: bool = False) -> None:
        self.proc = psutil.Process(pid) if pid else None
        self.peak = 0
        self.cpu0 = 0.0 if absolute else self._cpu()

    def _cpu(self) -> float:
        if self.proc is None:
            return 0.0
        with contextlib.suppress(psutil.Error):
            times = self.proc.cpu_times()
            return float(times.user + times.system)
        return 0.0

    def rss(self) -> int:
        if self.proc is None:
            return 0
        with contextlib.suppress(psutil.Error):
            return int(self.proc.memory_info().rss)
        return 0

    def sample(self) -> None:
        self.peak = max(self.peak, self.rss())

    def cpu(self) -> float:
        return self._cpu() - self.cpu0


# -------------------------------------------------------------- one run


def _specs(
    args: argparse.Namespace, url: str, users: list[dict[str, str]], tmp: Path
) -> list[dict[str, Any]]:
    workers = max(1, args.workers)
    start_at = time.monotonic() + args.connect_time
    per_message = (args.tokens / args.rate if args.rate else args.tokens / 2000) + 5
    deadline = start_at + per_message * args.messages * 3 + 60 + args.hold
    slow_users = [u["name"] for u in users[: args.slow]]
    disconnect_users = (
        [u["name"] for u in users[len(users) - args.disconnect :]] if args.disconnect else []
    )
    specs = []
    for w in range(workers):
        mine = users[w::workers]
        specs.append(
            {
                "mode": "idle" if args.idle else "stream",
                "worker": w,
                "url": url,
                "users": mine,
                "devices": args.devices,
                "conversations": args.conversations,
                "messages": args.messages,
                "tokens": args.tokens,
                "rate": args.rate,
                "slow_users": slow_users,
                "slow_delay": args.slow_delay,
                "stagger": args.stagger,
                "disconnect_users": disconnect_users,
                "idle": args.idle // workers + (1 if w < args.idle % workers else 0),
                "hold": args.hold,
                "ready_file": str(tmp / f"ready-{w}"),
                "result_file": str(tmp / f"result-{w}.json"),
                "start_at": start_at,
                "deadline": deadline,
            }
        )
    return specs


def _run_load(
    specs: list[dict[str, Any]], server: Sampler, side: list[Sampler], idle: bool
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    procs = []
    for spec in specs:
        proc = subprocess.Popen(
            _pinned(LOAD_CORE, [PYTHON, str(HERE / "load.py")]),
            stdin=subprocess.PIPE,
            text=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        procs.append(proc)
    loads = [Sampler(p.pid, absolute=True) for p in procs]
    base_rss = server.rss()
    hold_rss: list[int] = []
    ready_at: float | None = None
    start_at = specs[0]["start_at"]
    cpu_at_start: float | None = None
    side_at_start: list[float] = []
    while any(p.poll() is None for p in procs):
        time.sleep(0.1)
        server.sample()
        if cpu_at_start is None and time.monotonic() >= start_at and not idle:
            cpu_at_start = server.cpu()
            side_at_start = [s.cpu() for s in side + loads]
        if idle:
            if ready_at is None and all(Path(s["ready_file"]).exists() for s in specs):
                ready_at = time.monotonic()
            if ready_at is not None and time.monotonic() - ready_at > specs[0]["hold"] / 2:
                hold_rss.append(server.rss())
    end = time.monotonic()
    results: list[dict[str, Any]] = []
    for proc, spec in zip(procs, specs, strict=True):
        proc.wait()
        path = Path(spec["result_file"])
        results.append(
            json.loads(path.read_text()) if path.exists() else {"errors": ["load process failed"]}
        )
    cpu_start = cpu_at_start or 0.0
    side_start = side_at_start or [0.0] * (len(side) + len(loads))
    side_cpu = sum(s.cpu() for s in side) + sum(r.get("cpu", 0.0) for r in results)
    side_cpu_window = side_cpu - sum(side_start)
    info = {
        "server_cpu": server.cpu() - cpu_start,
        "server_cpu_total": server.cpu(),
        "server_peak_rss": server.peak,
        "base_rss": base_rss,
        "hold_rss": max(hold_rss) if hold_rss else 0,
        "wall": end - start_at,
        "client_core_cpu": side_cpu_window,
        "upstream_cpu": sum(s.cpu() for s in side) - sum(side_start[: len(side)]),
    }
    return results, info


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def _hist_percentile(hist: dict[int, int], q: float) -> float | None:
    total = sum(hist.values())
    if not total:
        return None
    want = total * q
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= want:
            return key / 10000
    return max(hist) / 10000


def _merge_hist(results: list[dict[str, Any]], name: str) -> dict[int, int]:
    merged: dict[int, int] = {}
    for r in results:
        for key, count in r.get(name, {}).items():
            merged[int(key)] = merged.get(int(key), 0) + count
    return merged


def _later(message: dict[str, Any]) -> bool:
    """Not its conversation's first message (tags end ``.m0``, ``.m1``, ...)."""
    return not message["tag"].endswith(".m0")


def _analyse(  # noqa: PLR0915
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    info: dict[str, Any],
    upstream: list[dict[str, Any]],
) -> dict[str, Any]:
    messages = [m for r in results for m in r.get("messages", [])]
    errors = [e for r in results for e in r.get("errors", [])]
    lag_p99 = max((r.get("lag_p99", 0.0) for r in results), default=0.0)
    wall = max(info["wall"], 1e-6)
    client_util = info["client_core_cpu"] / wall
    row: dict[str, Any] = {
        "errors": len(errors),
        "error_samples": errors[:10],
        "server_cpu_s": round(info["server_cpu"], 2),
        "server_cpu_util": round(info["server_cpu"] / wall, 3),
        "server_peak_rss_mib": round(info["server_peak_rss"] / 2**20, 1),
        "client_core_util": round(client_util, 3),
        "upstream_cpu_s": round(info["upstream_cpu"], 2),
        "load_cpu_s": round(info["client_core_cpu"] - info["upstream_cpu"], 2),
        "client_lag_p99_ms": round(lag_p99 * 1000, 1),
        "client_bound": client_util > 0.9 or lag_p99 > 0.05,
    }
    if args.idle:
        connected = sum(r.get("connected", 0) for r in results)
        alive = sum(m.get("alive", 0) for m in messages)
        per = (info["hold_rss"] - info["base_rss"]) / max(connected, 1)
        row.update(
            {
                "connections": connected,
                "alive_after_hold": alive,
                "connect_failures": sum(r.get("connect_failures", 0) for r in results),
                "kib_per_connection": round(per / 1024, 1),
                "server_base_rss_mib": round(info["base_rss"] / 2**20, 1),
            }
        )
        row["errors"] = row["errors"] + (connected - alive)
        return row
    ttfts = [m["ttft"] for m in messages if m["ttft"] is not None]
    later = [m["ttft"] for m in messages if m["ttft"] is not None and _later(m)]
    gaps = _merge_hist(results, "gaps")
    bins = _merge_hist(results, "bins")
    tokens = sum(m["tokens"] for m in messages)
    chars = sum(m["chars"] for m in messages)
    frames = sum(r.get("frames", 0) for r in results)
    token_frames = sum(m["frames"] - 1 for m in messages)  # requester's, without the last
    start = min((m["sent"] for m in messages), default=0.0)
    end = max((m["sent"] + m["duration"] for m in messages), default=start)
    makespan = max(end - start, 1e-6)
    # The steady window: every stream running (after the last first message
    # started, before the first conversation ended).
    by_conv: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        by_conv.setdefault(m["tag"].rsplit(".", 1)[0], []).append(m)
    turnarounds = []  # a conversation's final frame to its next message being sent
    stores = []  # of which: the final frame to conversation_updated (the answer stored)
    for conversation_messages in by_conv.values():
        ordered = sorted(conversation_messages, key=lambda m: m["sent"])
        for before, after in itertools.pairwise(ordered):
            turnarounds.append(after["sent"] - (before["sent"] + before["duration"]))
            if before.get("stored") is not None:
                stores.append(before["stored"] - before["duration"])
    firsts = [min(ms, key=lambda m: m["sent"]) for ms in by_conv.values()]
    lasts = [max(ms, key=lambda m: m["sent"]) for ms in by_conv.values()]
    run_start = results[0].get("start", None)
    begin = max((m["sent"] + (m["ttft"] or 0) for m in firsts), default=start) + 0.5
    finish = min((m["sent"] + m["duration"] for m in lasts), default=end) - 0.5
    spec_start = info.get("start_at", start)
    streams = args.users * args.conversations - args.disconnect * args.conversations
    if args.rate and finish - begin >= 2:
        lo, hi = int((begin - spec_start) * 10), int((finish - spec_start) * 10)
        window_tokens = sum(c for k, c in bins.items() if lo <= k < hi)
        rate = window_tokens / ((hi - lo) / 10)
        offered = streams * args.rate
    else:
        rate = tokens / makespan
        offered = None
    del run_start
    ratio = chars / tokens if tokens else 0.0
    upstream_by_tag = {u["tag"]: u for u in upstream if u.get("tag")}
    added, before_upstream, after_upstream, later_before = [], [], [], []
    for m in messages:
        u = upstream_by_tag.get(m["tag"])
        if m["ttft"] is not None and u and u["first_token"] is not None:
            added.append(m["ttft"] - (u["first_token"] - u["started"]))
            before_upstream.append(u["started"] - m["sent"])
            if _later(m):
                later_before.append(u["started"] - m["sent"])
            after_upstream.append(m["sent"] + m["ttft"] - u["first_token"])
    aborts = []
    for c in (c for r in results for c in r.get("closes", [])):
        u = upstream_by_tag.get(c["tag"])
        if u and u["ended"] is not None:
            aborts.append(u["ended"] - c["closed"])
    fan_ttft = [t for r in results for t in r.get("fan_ttft", [])]
    fan_gaps = _merge_hist(results, "fan_gaps")
    slow = [s for r in results for s in r.get("slow", [])]
    bad = sum(not m["ok"] for m in messages)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    row.update(
        {
            "streams": streams,
            "messages": len(messages),
            "failed_messages": bad,
            "offered_tokens_s": offered,
            "tokens_s": round(rate),
            # not with hang-ups: those streams deliver for part of the window only
            "delivered_pct": round(100 * rate / offered, 2)
            if offered and not args.disconnect
            else None,
            "chars_s": round(rate * ratio),
            "frames_s": round(frames / makespan),
            "token_frames": token_frames,
            "tokens": tokens,
            "merged_tokens_per_frame": round(tokens / token_frames, 2) if token_frames else None,
            "ttft_p50_ms": ms(_percentile(ttfts, 0.5)),
            "ttft_p99_ms": ms(_percentile(ttfts, 0.99)),
            "ttft_max_ms": ms(max(ttfts) if ttfts else None),
            # messages after each conversation's first: the upstream connection is warm
            "ttft_later_p50_ms": ms(_percentile(later, 0.5)),
            "ttft_later_p99_ms": ms(_percentile(later, 0.99)),
            "added_ttft_p50_ms": ms(_percentile(added, 0.5)),
            "added_ttft_p99_ms": ms(_percentile(added, 0.99)),
            "to_upstream_p50_ms": ms(_percentile(before_upstream, 0.5)),
            "to_upstream_p99_ms": ms(_percentile(before_upstream, 0.99)),
            "to_upstream_later_p50_ms": ms(_percentile(later_before, 0.5)),
            "to_upstream_later_p99_ms": ms(_percentile(later_before, 0.99)),
            "from_upstream_p50_ms": ms(_percentile(after_upstream, 0.5)),
            "from_upstream_p99_ms": ms(_percentile(after_upstream, 0.99)),
            "turnaround_p50_ms": ms(_percentile(turnarounds, 0.5)),
            "turnaround_p99_ms": ms(_percentile(turnarounds, 0.99)),
            "stored_p50_ms": ms(_percentile(stores, 0.5)),
            "stored_p99_ms": ms(_percentile(stores, 0.99)),
            "gap_p50_ms": ms(_hist_percentile(gaps, 0.5)),
            "gap_p99_ms": ms(_hist_percentile(gaps, 0.99)),
            "gap_max_ms": ms(max(gaps) / 10000 if gaps else None),
        }
    )
    if fan_ttft:
        row["fanout_ttft_p99_ms"] = ms(_percentile(fan_ttft, 0.99))
        row["fanout_gap_p99_ms"] = ms(_hist_percentile(fan_gaps, 0.99))
    if aborts:
        row["abort_p50_ms"] = ms(_percentile(aborts, 0.5))
        row["abort_p99_ms"] = ms(_percentile(aborts, 0.99))
        row["abort_max_ms"] = ms(max(aborts))
        row["aborts"] = len(aborts)
    if slow:
        row["slow_clients"] = len(slow)
        row["slow_complete_messages"] = sum(s["complete"] for s in slow)
        row["slow_messages_seen"] = sum(s["messages_seen"] for s in slow)
        row["slow_frames"] = sum(s["frames"] for s in slow)
        row["slow_closed"] = sum(s["closed_by_server"] is not None for s in slow)
    return row


_SPEED_PROBE = (
    "import time\n"
    "t = time.process_time()\n"
    "sum(i * i for i in range(2_000_000))\n"
    "print(time.process_time() - t)"
)


def machine_speed() -> float:
    """Milliseconds of CPU a fixed pure-Python loop takes on the server's core now.

    This machine's speed moves by a quarter within minutes (the same run
    of the same code took 10 s of server CPU, then 13 s): each run records
    the probe taken just before it, so figures can be read against it.
    """
    out = subprocess.run(
        _pinned(SERVER_CORE, [PYTHON, "-c", _SPEED_PROBE]),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return round(float(out) * 1000, 1)


def run_once(args: argparse.Namespace, compare: bool = False) -> dict[str, Any]:
    speed = machine_speed()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory(prefix="pichat-bench-") as tmpdir:
        tmp = Path(tmpdir)
        record = tmp / "upstream.json"
        upstream_argv = [PYTHON, str(HERE / "upstream.py"), "--port", str(args.upstream_port)]
        upstream_argv += ["--record", str(record)]
        with _process(_pinned(LOAD_CORE, upstream_argv), stdout=subprocess.PIPE) as upstream_proc:
            upstream_port = _read_port(upstream_proc)
            if compare:
                url = args.compare_url
                users = _tokens_file(args.compare_tokens)
                results, info = _load_against(
                    args, url, users, tmp, args.compare_pid, upstream_proc
                )
            else:
                port = _free_port()
                env = _server_env(args, tmp / "pichat.db", upstream_port, port)
                users = _add_users(env, max(args.users, 1))
                with _process(
                    _pinned(SERVER_CORE, [PYTHON, "-m", "pichat_trio", "serve"]),
                    env=env,
                    cwd=tmp,
                ) as server_proc:
                    _wait_healthy(port, server_proc)
                    url = f"ws://127.0.0.1:{port}"
                    results, info = _load_against(
                        args, url, users, tmp, server_proc.pid, upstream_proc
                    )
            upstream_proc.send_signal(signal.SIGTERM)
            upstream_proc.wait(15)
        upstream = json.loads(record.read_text()) if record.exists() else []
    row = _analyse(args, results, info, upstream)
    row["speed_probe_ms"] = speed
    return row


def _load_against(
    args: argparse.Namespace,
    url: str,
    users: list[dict[str, str]],
    tmp: Path,
    pid: int | None,
    upstream_proc: subprocess.Popen[str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    specs = _specs(args, url, users, tmp)
    server = Sampler(pid)
    results, info = _run_load(specs, server, [Sampler(upstream_proc.pid)], bool(args.idle))
    info["start_at"] = specs[0]["start_at"]
    return results, info


def _tokens_file(path: str) -> list[dict[str, str]]:
    users = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            name, token = line.split()
            users.append({"name": name, "token": token})
    return users


def run_scenario(args: argparse.Namespace, compare: bool = False) -> dict[str, Any]:
    runs = [run_once(args, compare) for _ in range(args.repeat)]
    median: dict[str, Any] = {}
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(value, bool):
            median[key] = any(v for v in values)
        elif isinstance(value, (int, float)) and all(isinstance(v, (int, float)) for v in values):
            median[key] = statistics.median(values)  # type: ignore[type-var]
        else:
            median[key] = value
    median["runs"] = runs
    return median


# ---------------------------------------------------------------- output

COLUMNS = [
    ("scenario", "scenario"),
    ("tokens_s", "tok/s"),
    ("delivered_pct", "deliv%"),
    ("chars_s", "chars/s"),
    ("frames_s", "frames/s"),
    ("ttft_p50_ms", "TTFT p50"),
    ("ttft_p99_ms", "TTFT p99"),
    ("added_ttft_p50_ms", "added p50"),
    ("gap_p99_ms", "gap p99"),
    ("abort_p99_ms", "abort p99"),
    ("kib_per_connection", "KiB/conn"),
    ("errors", "errors"),
    ("server_cpu_s", "srv CPU s"),
    ("server_peak_rss_mib", "srv RSS MiB"),
    ("client_bound", "client-bound"),
]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [head, rule]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(key)) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [row["streams"] for row in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in [
        ("ttft_p50_ms", "TTFT p50"),
        ("ttft_p99_ms", "TTFT p99"),
        ("gap_p50_ms", "gap p50"),
        ("gap_p99_ms", "gap p99"),
    ]:
        ax.plot(xs, [row.get(key) or 0 for row in rows], marker="o", label=label)
    ax.set_xlabel("concurrent streams (users x conversations)")
    ax.set_ylabel("milliseconds")
    ax.set_yscale("log")
    ax.set_title("PiChat latency percentiles against concurrency (one server core)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="PiChat load benchmarks", formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=[*PRESETS, "table"], help="a named scenario")
    parser.add_argument("--users", type=int, default=50, help="users, each with its own token")
    parser.add_argument("--devices", type=int, default=1, help="connections per user (fan-out)")
    parser.add_argument("--conversations", type=int, default=1, help="conversations per user")
    parser.add_argument("--messages", type=int, default=2, help="messages per conversation")
    parser.add_argument("--tokens", type=int, default=200, help="upstream tokens per answer")
    parser.add_argument("--rate", type=float, default=50, help="upstream tokens/s; 0 = max")
    parser.add_argument("--idle", type=int, default=0, help="hold this many idle connections")
    parser.add_argument("--hold", type=float, default=0, help="seconds to hold idle connections")
    parser.add_argument("--heartbeat", type=float, default=20, help="HEARTBEAT_INTERVAL, s")
    parser.add_argument("--slow", type=int, default=0, help="users with an extra slow device")
    parser.add_argument("--slow-delay", type=float, default=0.2, help="s per frame, slow device")
    parser.add_argument(
        "--stagger", type=float, default=0, help="spread first messages over this many s"
    )
    parser.add_argument("--disconnect", type=int, default=0, help="users that hang up mid-answer")
    parser.add_argument("--workers", type=int, default=1, help="load processes")
    parser.add_argument("--connect-time", type=float, default=3.0, help="s before the start")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--sweep", help="comma-separated user counts (latency vs concurrency)")
    parser.add_argument("--plot", help="write a PNG of latency percentiles vs concurrency")
    parser.add_argument("--json", help="write every figure and run here")
    parser.add_argument(
        "--sink",
        choices=["fast", "public"],
        default="fast",
        help="FRAME_SINK of the server: hypercorn's socket directly, or ASGI's send alone",
    )
    parser.add_argument("--server-env", action="append", default=[], help="KEY=VALUE for serve")
    parser.add_argument("--upstream-port", type=int, default=0, help="port of the fake upstream")
    parser.add_argument("--compare-url", help="also run against this server (ws://host:port)")
    parser.add_argument("--compare-tokens", help="NAME TOKEN lines for --compare-url")
    parser.add_argument("--compare-pid", type=int, help="pid of that server, to measure it")
    return parser


def _with(args: argparse.Namespace, values: dict[str, Any]) -> argparse.Namespace:
    defaults = vars(_parser().parse_args([]))
    merged = dict(vars(args))
    for key, value in values.items():
        if merged.get(key) == defaults.get(key):  # flags given on the command line win
            merged[key] = value
    if merged["idle"] and merged["hold"] == 0:
        merged["hold"] = 20
    return argparse.Namespace(**merged)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.compare_url and not args.compare_tokens:
        _parser().error("--compare-url needs --compare-tokens")
    if args.idle and args.hold == 0:
        args.hold = 20
    rows: list[dict[str, Any]] = []
    names: list[tuple[str, argparse.Namespace]]
    if args.preset == "table":
        names = [(name, _with(args, PRESETS[name])) for name in TABLE]
    elif args.preset:
        names = [(args.preset, _with(args, PRESETS[args.preset]))]
    elif args.sweep:
        names = [(f"{n} users", _with(args, {"users": int(n)})) for n in args.sweep.split(",")]
    else:
        names = [("custom", args)]
    for name, scenario in names:
        row = run_scenario(scenario)
        row["scenario"] = name
        rows.append(row)
        print(table([row]).splitlines()[-1], file=sys.stderr, flush=True)
        if scenario.compare_url:
            other = run_scenario(scenario, compare=True)
            other["scenario"] = f"{name} (other)"
            rows.append(other)
    print(f"PiChat benchmark, {time.strftime('%Y-%m-%d %H:%M')} UTC, one server core")
    print(table(rows))
    probes = ", ".join(
        f"{row['scenario']} {row['speed_probe_ms']:g}" for row in rows if "speed_probe_ms" in row
    )
    print(f"speed probe before each run (ms of CPU for a fixed loop on core 0, medians): {probes}")
    for row in rows:
        if row.get("client_bound"):
            print(
                f"note: {row['scenario']}: the load side (core {LOAD_CORE}) was the bottleneck: "
                f"{row['client_core_util']:.0%} of its core, event-loop lag p99 "
                f"{row['client_lag_p99_ms']} ms",
            )
        if row.get("error_samples"):
            print(f"errors in {row['scenario']}: {row['error_samples'][:3]}")
    if args.plot:
        plot([r for r in rows if "streams" in r], args.plot)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
