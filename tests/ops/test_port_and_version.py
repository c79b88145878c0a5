"""The port App Service asks for, the version, and what start-up warns about."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
import pytest
import trio
from support import run_server_process

from pichat_trio import __version__
from pichat_trio.settings import SettingsError, load_settings
from pichat_trio.startup import production_warnings

TOKEN = "x" * 20


@pytest.mark.parametrize(
    ("env", "port"),
    [
        ({}, 8080),
        ({"PORT": "8000"}, 8000),
        ({"WEBSITES_PORT": "8181", "PORT": "8000"}, 8181),
        ({"SERVER_PORT": "9000", "WEBSITES_PORT": "8181", "PORT": "8000"}, 9000),
    ],
)
def test_server_port_then_websites_port_then_port(env, port):
    assert load_settings({"API_TOKEN": TOKEN, **env}, env_file=None).port == port


def test_a_wrong_platform_port_names_its_variable():
    with pytest.raises(SettingsError, match="WEBSITES_PORT"):
        load_settings({"WEBSITES_PORT": "http"}, env_file=None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_server_listens_on_websites_port(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SERVER_PORT", "PORT")}
    env.update(
        ENVIRONMENT="production",
        API_TOKEN=TOKEN,
        SERVER_HOST="127.0.0.1",
        WEBSITES_PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'pichat.db'}",
        AI_PRECONNECT="0",
    )
    argv = [sys.executable, "-m", "pichat_trio", "serve"]
    async with run_server_process(argv, env, tmp_path) as server:
        assert server.url == f"http://127.0.0.1:{port}"
        with trio.fail_after(10):
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{server.url}/healthz")).status_code == 200
    assert server.status == 0


def test_pichat_version():
    result = subprocess.run(
        [sys.executable, "-m", "pichat_trio", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"pichat {__version__}"


def test_sqlite_in_production_is_warned_about():
    production = {"ENVIRONMENT": "production", "API_TOKEN": TOKEN, "METRICS_TOKEN": "m" * 20}
    warnings = production_warnings(load_settings(production, env_file=None))
    assert len(warnings) == 1 and "SQLite in production" in warnings[0]
    postgres = {**production, "DATABASE_URL": "postgresql+psycopg://db/pichat"}
    assert production_warnings(load_settings(postgres, env_file=None)) == []
    assert production_warnings(load_settings({"API_TOKEN": TOKEN}, env_file=None)) == []


def test_tls_files_go_together_and_must_exist(tmp_path):
    with pytest.raises(SettingsError, match="TLS_KEYFILE"):
        load_settings({"TLS_CERTFILE": str(tmp_path / "c.pem")}, env_file=None)
    missing = {"TLS_CERTFILE": str(tmp_path / "c.pem"), "TLS_KEYFILE": str(tmp_path / "k.pem")}
    with pytest.raises(SettingsError, match="TLS_CERTFILE"):
        load_settings(missing, env_file=None)
    result = subprocess.run(
        [sys.executable, "-m", "pichat_trio", "serve", "--certfile", str(tmp_path / "c.pem")],
        capture_output=True,
        text=True,
        env={**os.environ, "TLS_CERTFILE": "", "TLS_KEYFILE": ""},
        check=False,
    )
    assert result.returncode == 2 and "TLS_CERTFILE and TLS_KEYFILE" in result.stderr


def test_the_fake_azure_command_has_its_own_help():
    """``pichat fake-azure --help`` is the fake's help, not the top-level parser's error."""
    argv = [sys.executable, "-m", "pichat_trio", "fake-azure", "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: fake-azure") and "--tokens" in done.stdout
