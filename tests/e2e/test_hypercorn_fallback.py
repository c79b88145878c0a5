"""Where the fast path may not serve, the public ASGI sink does.

``transport/hypercorn_fast.fast_path`` decides at start-up: on a hypercorn
release it was not tested on (or one without the internals it uses) frames
go through ASGI's ``send`` and hypercorn pings by itself, with one warning
line. ``FRAME_SINK=public`` chooses the same path on purpose, silently.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio
from support import RawPeer, ask, make_settings, run_server
from wsproto.events import Ping

from pichat_trio.transport import hypercorn_fast
from pichat_trio.transport.asgi_sink import AsgiSink

GUARD = 20  # seconds: a hang guard, not a speed bound
FAST_LOG = "pichat_trio.transport.hypercorn_fast"


def test_tested_releases_take_the_fast_path(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert all(hypercorn_fast.fast_path(release) for release in ("0.17.3", "0.18.0"))
    assert caplog.records == []


@pytest.mark.parametrize("release", ["0.16.0", "0.19.0", "1.0.0", "unknown"])
def test_other_releases_take_the_public_path_with_one_warning(
    release: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert hypercorn_fast.fast_path(release) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"hypercorn {release} is not a release the fast path was tested on" in (
        record.getMessage()
    )


def test_a_tested_release_without_the_internals_takes_the_public_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hypercorn_fast, "_IMPORTED", False)  # as if an import had failed
    with caplog.at_level(logging.WARNING):
        assert hypercorn_fast.fast_path("0.18.0") is False
    [record] = caplog.records
    assert "hypercorn 0.18.0 lacks the internals the fast path uses" in record.getMessage()


async def _serve_and_check_the_public_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> dict:
    """Serve one answer and one peer pinged by hypercorn; no connection saw the fast path."""
    looked: list[object] = []

    def recording_sink_for(send: object, on_close: object) -> object:
        looked.append(send)
        raise AssertionError("the fast path is off")

    monkeypatch.setattr(hypercorn_fast, "sink_for", recording_sink_for)
    settings = make_settings(
        tmp_path, {"HEARTBEAT_INTERVAL": "0.2", "HEARTBEAT_TIMEOUT": "30", **env}
    )
    async with run_server(settings) as server:
        with trio.fail_after(GUARD):
            async with server.client() as client:
                answer = await ask(client, "the public path")
                sinks = [type(c._sink) for c in server.app.connections]
            peer = await RawPeer.connect(server.url, server.token)
            while not any(isinstance(event, Ping) for event in await peer.events()):
                pass  # hypercorn's own ping, as no app heartbeat runs
            await peer.stream.aclose()
    assert looked == [] and sinks == [AsgiSink]
    assert answer["final"]["finish_reason"] == "stop"
    assert answer["text"] == answer["message"]["content"] and "the public path" in answer["text"]
    return answer


async def test_an_untested_hypercorn_serves_through_the_public_sink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hypercorn_fast, "installed_version", lambda: "0.19.0")
    with caplog.at_level(logging.WARNING, logger="pichat_trio"):
        await _serve_and_check_the_public_path(tmp_path, monkeypatch, {})
    [warning] = [r.getMessage() for r in caplog.records if r.name == FAST_LOG]
    assert warning.startswith("hypercorn 0.19.0 is not a release the fast path was tested on")


async def test_frame_sink_public_chooses_the_public_sink_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pichat_trio"):
        await _serve_and_check_the_public_path(tmp_path, monkeypatch, {"FRAME_SINK": "public"})
    assert [r for r in caplog.records if r.name == FAST_LOG] == []
