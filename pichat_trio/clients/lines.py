"""Lines typed on stdin, as a trio channel.

A worker thread reads them: a terminal cannot be read without blocking on every
platform, and setting stdin non-blocking would leak into the shell that started us.
The thread is abandoned when its reader is cancelled (the program is leaving).
"""

from __future__ import annotations

from typing import TextIO

import trio

__all__ = ["read_lines"]


async def read_lines(send: trio.MemorySendChannel[str], stdin: TextIO) -> None:
    """Send each line of ``stdin`` (newline kept) to ``send``; close it at end of input."""
    async with send:
        while True:
            line = await trio.to_thread.run_sync(stdin.readline, abandon_on_cancel=True)
            if not line:
                return
            await send.send(line)
