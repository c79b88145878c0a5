"""The Pi's sound: recording with one command and playing with another (ALSA's
``arecord`` and ``aplay`` by default), as child processes fed through pipes.

Recording reads the recorder's WAV from its stdout until told to stop (or until it ends
by itself); playing writes a WAV to the player's stdin as its chunks arrive, so sound
starts with the first chunk. The WAV helpers are shared with the server (``wav.py``).
"""

from __future__ import annotations

import shlex
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from ..wav import encode_wav, parse_wav

__all__ = ["Player", "finished_wav", "record"]

MAX_SECONDS = 60.0
"""The server's default limit for a voice message."""

_MAX_BYTES = 16 * 1024 * 1024


def finished_wav(data: bytes) -> bytes:
    """A WAV whose header says its real length (recorders and streams leave it open).

    Raises ``UnsupportedAudio`` saying what is wrong with ``data``."""
    return encode_wav(parse_wav(data, max_seconds=3600, max_bytes=1 << 31))


async def record(command: str, until: Callable[[], Awaitable[object]]) -> bytes:
    """Run the recorder until ``until()`` returns or the recorder ends; its WAV, finished
    (b"" when it gave nothing). Told to stop, the recorder gets SIGINT, on which arecord
    writes out what it holds and exits; all it wrote is kept."""
    process = await trio.lowlevel.open_process(shlex.split(command), stdout=subprocess.PIPE)
    assert process.stdout is not None
    stdout = process.stdout
    chunks: list[bytes] = []
    ended = trio.Event()

    async def read_all() -> None:
        size = 0
        while size < _MAX_BYTES:
            chunk = await stdout.receive_some(65536)
            if not chunk:
                break
            chunks.append(bytes(chunk))
            size += len(chunk)
        ended.set()

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            async with trio.open_nursery() as waiting:

                async def stop_when_told() -> None:
                    await until()
                    waiting.cancel_scope.cancel()

                async def stop_at_end() -> None:
                    await ended.wait()
                    waiting.cancel_scope.cancel()

                waiting.start_soon(stop_when_told)
                waiting.start_soon(stop_at_end)
                waiting.cancel_scope.deadline = trio.current_time() + MAX_SECONDS
            if process.returncode is None:
                process.send_signal(signal.SIGINT)  # arecord's way to end cleanly
            with trio.move_on_after(2):
                await ended.wait()
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()
            await stdout.aclose()
    data = b"".join(chunks)
    return finished_wav(data) if data else b""


class Player:
    """One answer's speech, fed to the play command as it arrives."""

    def __init__(self, command: str) -> None:
        self.command = command

    async def play(self, chunks: AsyncIterator[bytes]) -> bytes:
        """Play the chunks as they come; returns the whole WAV (header left open)."""
        process = await trio.lowlevel.open_process(shlex.split(self.command), stdin=subprocess.PIPE)
        assert process.stdin is not None
        received: list[bytes] = []
        try:
            async for chunk in chunks:
                received.append(chunk)
                try:
                    await process.stdin.send_all(chunk)
                except trio.BrokenResourceError:  # the player quit: keep the audio anyway
                    continue
            await process.stdin.aclose()
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
        return b"".join(received)
