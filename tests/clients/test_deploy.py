"""The Raspberry Pi files in deploy/ stay true to the client they start."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from pichat_trio.__main__ import _parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "raspberry-pi"


def _environment() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / "voice.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_the_unit_starts_pichat_voice_with_the_config_files_options():
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # systemd's keys are case-sensitive
    unit.read_string((DEPLOY / "pichat-voice.service").read_text())
    service = unit["Service"]
    assert service["EnvironmentFile"] == "/etc/pichat/voice.env"
    assert service["Restart"] == "always"
    env = _environment()
    assert set(env) == {"PICHAT_URL", "PICHAT_TOKEN", "PICHAT_VOICE_OPTIONS"}
    assert env["PICHAT_URL"].startswith("wss://") and env["PICHAT_URL"].endswith("/ws")
    command = shlex.split(service["ExecStart"].replace("$PICHAT_VOICE_OPTIONS", ""))
    assert command[0].endswith("/bin/pichat") and command[1] == "voice"
    args = _parser().parse_args([*command[1:], *shlex.split(env["PICHAT_VOICE_OPTIONS"])])
    assert args.command == "voice" and args.gpio == 17 and args.input is None
    # Under systemd there is no keyboard: the unit's options must not need one.
    assert args.gpio is not None
