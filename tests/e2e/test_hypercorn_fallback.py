"""On a hypercorn release the fast paths were not tested on, the public ASGI path serves.

``transport/hypercorn_support.py`` decides at start-up: frames go through
ASGI's ``send`` and hypercorn pings by itself, with one warning line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
from support import RawPeer, ask, make_settings, run_server
from wsproto.events import Ping

from pichat_trio.transport import hypercorn_support
from pichat_trio.transport.direct_frames import DirectFrames

GUARD = 20  # seconds: a hang guard, not a speed bound


def test_tested_releases_take_the_fast_paths() -> None:
    for release in ("0.17.2", "0.18.0"):
        paths = hypercorn_support.fast_paths(release)
        assert paths.direct_frames and paths.app_pings


@pytest.mark.parametrize("release", ["0.16.0", "0.19.0", "1.0.0", "unknown"])
def test_other_releases_take_the_public_path(
    release: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        paths = hypercorn_support.fast_paths(release)
    assert not paths.direct_frames and not paths.app_pings
    [record] = caplog.records
    assert f"hypercorn {release} is not a release the fast paths were tested on" in (
        record.getMessage()
    )


async def test_an_untested_hypercorn_serves_through_asgi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hypercorn_support, "installed_version", lambda: "0.19.0")
    direct: list[object] = []
    original = DirectFrames.for_send

    def recording_for_send(send: object) -> DirectFrames | None:
        direct.append(send)
        return original(send)  # type: ignore[arg-type]

    monkeypatch.setattr(DirectFrames, "for_send", staticmethod(recording_for_send))
    settings = make_settings(tmp_path, {"HEARTBEAT_INTERVAL": "0.2", "HEARTBEAT_TIMEOUT": "30"})
    with caplog.at_level(logging.WARNING, logger="pichat_trio"):
        async with run_server(settings) as server:
            with trio.fail_after(GUARD):
                async with server.client() as client:
                    answer = await ask(client, "the public path")
                peer = await RawPeer.connect(server.url, server.token)
                while not any(isinstance(event, Ping) for event in await peer.events()):
                    pass  # hypercorn's own ping, as no app heartbeat runs
                await peer.stream.aclose()
    assert answer["final"]["finish_reason"] == "stop"
    assert answer["text"] == answer["message"]["content"] and "the public path" in answer["text"]
    assert direct == []  # no connection looked for hypercorn's socket
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("hypercorn 0.19.0 is not a release" in message for message in warnings)
