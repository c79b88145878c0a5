"""``services/preconnect.py``: connections asked for as clients connect, up to the limit,
and a pause after the AI service could not be reached (virtual clock)."""

from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from pichat_trio.errors import UpstreamUnavailable
from pichat_trio.services.preconnect import Preconnect


class Model:
    """The one method of ``ChatModel`` that ``Preconnect`` uses, recording its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, int]] = []
        self.failing = False

    async def preconnect(self, streams: int) -> int:
        self.calls.append((trio.current_time(), streams))
        if self.failing:
            raise UpstreamUnavailable("the AI service cannot be reached")
        await trio.sleep(0.5)  # the connects take a while
        return streams


async def test_asks_for_the_connected_clients_up_to_the_limit(autojump_clock: MockClock) -> None:
    model = Model()
    preconnect = Preconnect(model, limit=3)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(preconnect.run)
        await trio.testing.wait_all_tasks_blocked()
        assert model.calls == []  # nothing before a client connects
        preconnect.clients(1)
        await trio.sleep(0.1)
        preconnect.clients(2)  # while the first call runs: one more call after it
        preconnect.clients(5)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert [streams for _, streams in model.calls] == [1, 3]
    assert model.calls[1][0] == pytest.approx(model.calls[0][0] + 0.5)


async def test_waits_after_a_failure(
    autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    model = Model()
    model.failing = True
    preconnect = Preconnect(model, limit=10, retry_seconds=30)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(preconnect.run)
        preconnect.clients(1)
        await trio.sleep(1)
        preconnect.clients(2)  # during the pause: tried when it ends, not before
        await trio.sleep(10)
        assert len(model.calls) == 1
        model.failing = False
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert [streams for _, streams in model.calls] == [1, 2]
    assert model.calls[1][0] - model.calls[0][0] == pytest.approx(30)
    assert "could not open connections to the AI service" in caplog.text
