"""The benchmark scripts, run at a tiny size so they cannot rot. Nothing here is timed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset")


def _json_of(tmp_path: Path, script: str, *flags: str) -> Any:
    """What ``bench/SCRIPT --json FILE FLAGS`` wrote to FILE."""
    out = tmp_path / "bench.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--json", str(out), *flags],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return json.loads(out.read_text())


def _bench(tmp_path: Path, *flags: str) -> dict:
    rows = _json_of(tmp_path, "run.py", "--repeat", "1", "--connect-time", "1", *flags)
    assert len(rows) == 1
    return rows[0]


def test_streams_fan_out_a_slow_device_a_hang_up_and_the_plot(tmp_path):
    png = tmp_path / "latency.png"
    row = _bench(
        tmp_path,
        "--plot",
        str(png),
        "--users",
        "3",
        "--devices",
        "2",
        "--messages",
        "2",
        "--tokens",
        "12",
        "--rate",
        "200",
        "--slow",
        "1",
        "--slow-delay",
        "0.001",
        "--disconnect",
        "1",
    )
    assert row["errors"] == 0, row["error_samples"]
    assert row["messages"] == 5  # three users x two messages, less the one hung up on
    assert row["tokens"] == 5 * 12
    assert row["ttft_p99_ms"] is not None and row["gap_p99_ms"] is not None
    assert row["fanout_ttft_p99_ms"] is not None
    assert row["aborts"] == 1 and row["abort_p99_ms"] is not None
    assert row["slow_complete_messages"] >= 1
    assert row["server_cpu_s"] > 0 and row["server_peak_rss_mib"] > 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_idle_connections(tmp_path):
    row = _bench(tmp_path, "--idle", "20", "--hold", "1", "--heartbeat", "0.5")
    assert row["connections"] == 20 and row["alive_after_hold"] == 20
    assert row["kib_per_connection"] is not None


def _script(name: str, *flags: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *flags],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return done.stdout


def test_database_calls() -> None:
    out = _script("db_calls.py", "--calls", "5")
    for call in ("start_exchanges", "finish_messages"):
        assert f"{call}, one request per call:" in out and f"{call}, 5 in one call:" in out


def test_database_threads() -> None:
    # No busy tasks: the script's every way is run and printed, and no call waits on a
    # thread that a spinning loop keeps from the GIL (the figures are the bench's, not this).
    out = _script("db_threads.py", "--calls", "3", "--busy", "0")
    for way in ("run_sync", "Database.run", "Database.start_soon"):
        assert f"{way}, thread start: median" in out and f"{way}, result back in trio:" in out


def test_memory_per_idle_connection() -> None:
    out = _script("conn_memory.py", "--connections", "20")
    assert "B per connection (20 idle connections)" in out
    assert "largest sites" in out


def test_micro_costs() -> None:
    for flags in ((), ("--no-lock",)):
        out = _script("micro.py", "--repeat", "3", *flags)
        assert "ms of CPU per handshake" in out
        assert "with a deadline scope" in out
        assert "finish of 50 during a checkpoint of 200: median" in out


@pytest.mark.parametrize("limits", [True, False])
def test_the_amplification_case_with_and_without_the_per_user_limits(tmp_path, limits):
    flags = ["--connections", "40", "--flooders", "2", "--seconds", "0.5"]
    result = _json_of(tmp_path, "amplify.py", *flags, *([] if limits else ["--no-limits"]))
    expected = {"101": 32, "429": 8} if limits else {"101": 40}
    assert result["handshakes"] == expected
    assert result["baseline"]["pings"] > 0 and result["flood"]["pings"] > 0
    assert result["flood_requests"] > 0 and result["bytes_to_flooding_user"] > 0


def test_scale_out_across_two_instances(tmp_path: Path) -> None:
    if not os.environ.get("PICHAT_TEST_POSTGRES_URL") or shutil.which("redis-server") is None:
        pytest.skip("needs PICHAT_TEST_POSTGRES_URL and redis-server")
    result = _json_of(tmp_path, "scaleout.py", "--users", "2", "--words", "20", "--rate", "0")
    backplane, alone = result["backplane"], result["one_instance"]
    assert backplane["samples"] > 0 and backplane["tokens"] == alone["tokens"] > 0
    assert backplane["redis_messages_per_token"] > 0 and alone["redis_messages_per_token"] == 0
    assert backplane["cpu_b"] > 0  # instance B delivered the other devices' tokens


def test_the_speech_sdk_recognisers_cost() -> None:
    out = _script("sdk_recognizers.py", "--sessions", "2", "--utterances", "1", "--seconds", "0.2")
    for line in ("idle, open", "a recogniser per utterance", "one kept per session"):
        assert line in out and "CPU s in" in out.split(line, 1)[1].split("\n", 1)[0]
