"""A program on a pseudo-terminal, driven like a person at a keyboard.

The child gets the terminal as its controlling terminal (``setsid --ctty``), so Ctrl-C
typed into it is the kernel's SIGINT to the child, as in a real terminal.
"""

from __future__ import annotations

import os
import re
import sys
import termios

import trio

__all__ = ["Terminal", "open_terminal", "pichat_command"]

WAIT = 60
"""Seconds to wait for expected output before failing: generous, the machine is shared."""


def pichat_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pichat_trio", *args]


class Terminal:
    def __init__(self, process: trio.Process, master: trio.lowlevel.FdStream) -> None:
        self.process = process
        self.master = master
        self.output = ""
        self._seen = 0

    async def expect(self, pattern: str) -> re.Match[str]:
        """Read until ``pattern`` (a regex) appears after what earlier expects matched."""
        regex = re.compile(pattern)
        with trio.fail_after(WAIT):
            while True:
                match = regex.search(self.output, self._seen)
                if match:
                    self._seen = match.end()
                    return match
                try:
                    data = await self.master.receive_some(4096)
                except OSError:  # EIO: the child has gone and closed its side
                    data = b""
                if not data:
                    raise AssertionError(f"no {pattern!r} in the output:\n{self.output}")
                self.output += data.decode(errors="replace").replace("\r\n", "\n")

    async def type(self, text: str) -> None:
        await self.master.send_all(text.encode())

    async def wait(self) -> int:
        with trio.fail_after(WAIT):
            return await self.process.wait()

    async def __aenter__(self) -> Terminal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """A test that failed half-way leaves no client running into the next one."""
        if self.process.returncode is None:
            self.process.kill()
            with trio.CancelScope(shield=True):
                await self.process.wait()
        await self.master.aclose()


async def open_terminal(command: list[str], env: dict[str, str] | None = None) -> Terminal:
    master, slave = os.openpty()
    attributes = termios.tcgetattr(slave)
    attributes[3] |= termios.ISIG | termios.ICANON
    termios.tcsetattr(slave, termios.TCSANOW, attributes)
    try:
        process = await trio.lowlevel.open_process(
            ["setsid", "--ctty", *command],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, **(env or {})},
        )
    finally:
        os.close(slave)
    return Terminal(process, trio.lowlevel.FdStream(master))
