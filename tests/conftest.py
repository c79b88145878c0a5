from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import RunningServer, make_settings, run_server


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(tmp_path)) as running:
        yield running
