"""``sink_server``: the conformance suite's server, once per sink (``sink_support``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sink_support import SINKS, SinkServer, open_sink_server


@pytest.fixture(params=SINKS)
async def sink_server(request: pytest.FixtureRequest) -> AsyncIterator[SinkServer]:
    async with open_sink_server(request.param) as server:
        yield server
