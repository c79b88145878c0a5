"""``pichat serve`` as a subprocess: started, found listening, stopped."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
from cli_support import environment

_LISTENING = re.compile(rb"PiChat (?:\S+ )?listening on (http://\S+) ")


@asynccontextmanager
async def serving(tmp_path: Path, env: dict[str, str | None] | None = None) -> AsyncIterator[str]:
    """Run ``pichat serve`` on a free port until the block ends; yields its ws:// URL.

    Everything it wrote to stderr before listening is in the AssertionError
    if it stops instead.
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "pichat_trio", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        env=environment(tmp_path, env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    seen = b""
    try:
        with trio.fail_after(120):
            while (found := _LISTENING.search(seen)) is None:
                chunk = await process.stderr.receive_some(65536)
                if not chunk:
                    await process.wait()
                    raise AssertionError(f"pichat serve stopped ({process.returncode}): {seen!r}")
                seen += chunk
        url = found.group(1).decode().replace("http", "ws", 1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_drain, process.stderr)
            yield url
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(30):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    while await stream.receive_some(65536):
        pass
