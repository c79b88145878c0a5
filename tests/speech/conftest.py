"""Fixtures for the speech tests: the Azure fake, engines, test audio."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pichat_trio.adapters.speech.azure import AzureSpeechEngine
from pichat_trio.fakes.azure_speech import FakeAzureSpeech, open_fake_azure_speech


@pytest.fixture
async def fake_azure() -> AsyncIterator[FakeAzureSpeech]:
    async with open_fake_azure_speech(FakeAzureSpeech(key="test-key-1234")) as fake:
        yield fake


@pytest.fixture
def azure_engine(fake_azure: FakeAzureSpeech) -> AzureSpeechEngine:
    return AzureSpeechEngine(key=fake_azure.key, host=fake_azure.host)
