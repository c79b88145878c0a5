"""A PostgreSQL server of the test's own, on a free port: stopped, started, frozen at will.

``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` user (``runuser``), in a temporary folder that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return None


class PrivatePostgres:
    def __init__(self, folder: Path, port: int, user: str | None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = port
        self._user = user
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self._user, "--"] if self._user else []
        # The server inherits no pipe of ours (pg_ctl -l), or run() would wait for it to exit.
        subprocess.run(
            [*prefix, *command],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _binary("pg_ctl") or "pg_ctl",
            *("-D", str(self.data), "-l", str(self.folder / "log"), "-o", options, "-w", "start"),
        )

    def stop(self) -> None:
        self._run(_binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _pids(self) -> list[int]:
        import psutil

        first_line = (self.data / "postmaster.pid").read_text().splitlines()[0]
        postmaster = psutil.Process(int(first_line))
        return [postmaster.pid, *(child.pid for child in postmaster.children(recursive=True))]

    def freeze(self) -> None:
        """SIGSTOP every process of the server: the kernel still accepts connections and
        acknowledges packets, and nothing answers (as in a network partition)."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    initdb = _binary("initdb")
    if initdb is None or _binary("pg_ctl") is None:
        pytest.skip("initdb/pg_ctl not found (apt-get install postgresql)")
    user = None
    folder = Path(tempfile.mkdtemp(prefix="pichat-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("as root, runuser is needed to run initdb as postgres")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("as root, initdb needs a postgres user to run as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        user = "postgres"
    server = PrivatePostgres(folder, _free_port(), user)
    try:
        server._run(initdb, "-D", str(server.data), "-A", "trust", "-U", "postgres", "--no-sync")
        server.start()
        try:
            yield server
        finally:
            with contextlib.suppress(Exception):
                server.thaw()
            with contextlib.suppress(Exception):
                server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
