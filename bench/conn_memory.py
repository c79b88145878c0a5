"""Python memory per idle WebSocket connection, by tracemalloc, and where it goes.

    .venv/bin/python bench/conn_memory.py [--connections 1000] [--sink public]

Runs the server in this process (SQLite in a temporary directory, echo
model, pings every 5 s), opens the connections from a ``bench/load.py``
process in idle mode, and compares tracemalloc snapshots taken before and
while they are held: the bytes per connection in all, by file, and the
largest allocation sites. RSS per connection, which includes the
allocator's overhead, is the ``--idle`` scenario of ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from functools import partial
from pathlib import Path

import trio

from pichat_trio.server import serve
from pichat_trio.settings import load_settings

HERE = Path(__file__).parent
TOKEN = "bench-token-0123456789abcdef"


async def _measure(count: int, tmp: Path, sink: str = "fast") -> None:
    settings = load_settings(
        {
            "API_TOKEN": TOKEN,
            "DATABASE_URL": f"sqlite:///{tmp / 'pichat.db'}",
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": "0",
            "AI_PROVIDER": "echo",
            "AUDIO_DIR": str(tmp / "audio"),
            "HEARTBEAT_INTERVAL": "5",
            "FRAME_SINK": sink,
        },
        env_file=None,
    )
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve, settings))
        gc.collect()
        tracemalloc.start(12)
        before = tracemalloc.take_snapshot()
        ready = tmp / "ready"
        spec = {
            "mode": "idle",
            "worker": 0,
            "url": url.replace("http", "ws", 1),
            "users": [{"name": "default", "token": TOKEN}],
            "idle": count,
            "hold": 6,
            "ready_file": str(ready),
            "result_file": str(tmp / "result.json"),
            "start_at": time.monotonic(),
            "deadline": time.monotonic() + 120,
        }
        load = await trio.lowlevel.open_process(
            [sys.executable, str(HERE / "load.py")], stdin=subprocess.PIPE
        )
        assert load.stdin is not None
        await load.stdin.send_all(json.dumps(spec).encode())
        await load.stdin.aclose()
        while not ready.exists():  # noqa: ASYNC110 - a file written by another process
            await trio.sleep(0.2)
        await trio.sleep(2)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        print(f"{total / count:,.0f} B per connection ({count} idle connections)")
        print("by file:")
        for stat in after.compare_to(before, "filename")[:12]:
            print(f"  {stat.size_diff / count:7,.0f} B  {stat.traceback[0].filename}")
        print("largest sites (innermost first):")
        for stat in after.compare_to(before, "traceback")[:12]:
            frames = " <- ".join(
                f"{Path(f.filename).name}:{f.lineno}" for f in reversed(stat.traceback[-4:])
            )
            print(f"  {stat.size_diff / count:7,.0f} B  {frames}")
        await load.wait()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--sink", choices=["fast", "public"], default="fast", help="FRAME_SINK")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        trio.run(_measure, args.connections, Path(tmp), args.sink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
