"""Running the ``pichat`` command as a user does: a subprocess with a clean configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pichat_trio.settings import VARIABLES

TOKEN = "cli-test-token-0123456789"


def environment(tmp_path: Path, env: dict[str, str | None] | None = None) -> dict[str, str]:
    """The process environment without any PiChat variable but a SQLite file in
    ``tmp_path``, a token and development mode; ``env`` adds (``None``: removes) some."""
    known = {variable.name for variable in VARIABLES}
    environ = {k: v for k, v in os.environ.items() if k not in known}
    environ.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            "ENVIRONMENT": "development",
            "API_TOKEN": TOKEN,
            "PYTHONIOENCODING": "utf-8",
        }
    )
    for name, value in (env or {}).items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return environ


def pichat(
    tmp_path: Path, *args: str, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pichat_trio ARGS`` in ``tmp_path`` (no .env there) with a clean config.

    ``env`` adds variables; a ``None`` value removes one.
    """
    return subprocess.run(
        [sys.executable, "-m", "pichat_trio", *args],
        cwd=tmp_path,
        env=environment(tmp_path, env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
