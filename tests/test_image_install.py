"""The image's install steps, run as the Dockerfile runs them, without a Docker engine.

The build stage's RUN (our wheel, and the requirement naming it) runs
verbatim in a copy of what the stage COPYs; the final stage's ``pip install``
runs verbatim into a fresh virtual environment, from the same constraints
file; then the installed ``pichat serve`` runs as the image's numeric user
(when the tests run as root, as CI does) with the image's environment, and
its ``/healthz`` and the HEALTHCHECK command both say it is healthy.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from support import run_server_process

ROOT = Path(__file__).resolve().parents[1]


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in joined.splitlines()]
    found = []
    for line in lines:
        if line and not line.startswith("#"):
            kind, _, args = line.partition(" ")
            found.append((kind.upper(), args.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for kind, args in _instructions():
        if kind == "FROM":
            stages.append([])
        stages[-1].append((kind, args))
    return stages


def _user_ids(stage: list[tuple[str, str]]) -> tuple[int, int]:
    user = [args for kind, args in stage if kind == "USER"][-1]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


@pytest.fixture
def image_root() -> Iterator[Path]:
    """A directory the image's user can read (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pichat-image-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _run(command: str, cwd: Path, mapping: dict[str, str], env: dict[str, str]) -> None:
    for image_path, here in mapping.items():
        command = command.replace(image_path, here)
    subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=cwd, env=env, check=True)


_SYSTEM_PYTHON = Path("/usr/bin/python3.11")
"""An interpreter the image's user may run (this one may live under root's private home)."""

AS_IMAGE_USER = os.geteuid() == 0 and _SYSTEM_PYTHON.exists()
"""Run the server as the image's numeric user: possible as root, with a readable Python."""


@pytest.fixture
def installed(image_root: Path) -> Path:
    """The build stage's RUN, then the final stage's ``pip install``, into a new venv."""
    build, final = _stages()
    src, dist, venv = image_root / "src", image_root / "dist", image_root / "venv"
    src.mkdir()
    for kind, args in build:
        if kind == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                if (ROOT / source).is_dir():
                    skip = shutil.ignore_patterns("__pycache__")
                    shutil.copytree(ROOT / source, src / source, ignore=skip)
                else:
                    shutil.copy(ROOT / source, src / source)
    python = str(_SYSTEM_PYTHON) if AS_IMAGE_USER else sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "PIP_QUIET": "1"}
    env.pop("PYTHONPATH", None)
    mapping = {"/dist": str(dist), "/tmp/constraints.txt": str(ROOT / "constraints.txt")}
    for kind, args in build:
        if kind == "RUN":
            _run(args, src, mapping, env)
    installs = [args for kind, args in final if kind == "RUN" and "pip install" in args]
    assert len(installs) == 1
    pip_step = installs[0].split("&&")[0].strip()  # the rest makes the user and cleans up
    assert "-c /tmp/constraints.txt" in pip_step
    _run(pip_step, image_root, mapping, env)
    return venv


async def test_the_image_installs_and_serves_as_its_user(image_root, installed):
    _, final = _stages()
    venv = installed
    env = {"PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    image_env: dict[str, str] = {}
    for kind, args in final:
        if kind == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                image_env[name] = value
    data = image_root / "data"
    data.mkdir()
    uid, gid = _user_ids(final)
    run_as = {}
    if AS_IMAGE_USER:
        os.chown(data, uid, gid)

        def become_image_user() -> None:
            os.setgid(gid)
            os.setuid(uid)

        run_as = {"preexec_fn": become_image_user}
    serve_env = {
        "PATH": env["PATH"],
        **image_env,
        "SERVER_HOST": "127.0.0.1",
        "WEBSITES_PORT": "0",
        "API_TOKEN": "image-token-0123456789",
        "DATABASE_URL": f"sqlite:///{data / 'pichat.db'}",
        "AUDIO_DIR": str(data / "audio"),
        "AI_PRECONNECT": "0",
        "HOME": str(data),
    }
    command = json.loads([args for kind, args in final if kind == "CMD"][-1])
    assert command[0] == "pichat"
    argv = [str(venv / "bin" / "pichat"), *command[1:]]
    async with run_server_process(argv, serve_env, data, **run_as) as server:
        with trio.fail_after(20):
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{server.url}/healthz")).status_code == 200
            port = server.url.rsplit(":", 1)[1]
            check = await trio.run_process(
                [str(venv / "bin" / "python"), "-m", "pichat_trio.healthcheck"],
                env={**serve_env, "WEBSITES_PORT": port},
                check=False,
            )
            assert check.returncode == 0
    assert server.status == 0
    assert not any("Traceback" in line for line in server.lines), server.lines
    if AS_IMAGE_USER:
        assert (data / "pichat.db").stat().st_uid == uid  # written by the image's user
