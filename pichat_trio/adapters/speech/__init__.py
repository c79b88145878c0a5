"""Speech engines: Azure Speech (SDK) when a key is configured, else offline.

``open_speech_engine`` picks one and owns it for the duration of the block.
The Azure SDK is imported only when it is used, so an offline install does
not need it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ...ports import SpeechEngine
from .local import OfflineSpeechEngine

__all__ = ["OfflineSpeechEngine", "open_speech_engine"]

_CLOSE_SECONDS = 5.0


@asynccontextmanager
async def open_speech_engine(
    *,
    azure_key: str | None = None,
    azure_region: str | None = None,
    azure_endpoint: str | None = None,
    espeak_path: str | None = None,
    queue_per_user: int = 4,
) -> AsyncIterator[SpeechEngine]:
    """The Azure engine if ``azure_key`` is set, else the offline one.

    ``azure_endpoint`` is a host URL (``wss://...`` or ``ws://127.0.0.1:5000``,
    the SDK's ``host``) that replaces the regional endpoint, for a speech
    container or a test fake. A key without a region or endpoint is a
    configuration error, raised as ``ValueError``. ``queue_per_user`` bounds
    the offline recogniser's queue for each user.
    """
    engine: SpeechEngine
    if azure_key:
        from .azure import AzureSpeechEngine

        if not azure_region and not azure_endpoint:
            raise ValueError("AZURE_SPEECH_REGION must be set when AZURE_SPEECH_KEY is")
        engine = AzureSpeechEngine(
            key=azure_key, region=azure_region or None, host=azure_endpoint or None
        )
    else:
        engine = OfflineSpeechEngine(espeak_path=espeak_path, queue_per_owner=queue_per_user)
    try:
        yield engine
    finally:
        with trio.move_on_after(_CLOSE_SECONDS, shield=True):
            await engine.aclose()
