"""Streaming recognition offline: pocketsphinx's decoder, fed as the user speaks.

A decoder holds one utterance at a time and about 90 MB of model, so the
recogniser keeps a pool of at most ``max_streams`` of them, loaded on first
use and reused; a stream waits for a free one. Audio goes to the decoder in
worker threads, all that has arrived in one call; every ``_PARTIAL_MS`` of
audio the decoder's best hypothesis so far is reported as a partial.
Each utterance starts from the model's initial cepstral mean, so a result
never depends on what another user said before.

Decoding costs about 0.15 s of CPU per second of audio, and a partial
hypothesis a little more: one core keeps up with a handful of live streams
(bench/voice_sessions.py --sessions N measures it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from ...errors import InvalidInput
from .local import new_decoder

__all__ = ["OfflineStreamingRecognizer"]

RATE = 16000  # the bundled en-US model's rate
_PARTIAL_MS = 250
_LANGUAGES = ("en-us", "en")


class OfflineStreamingRecognizer:
    name = "offline"

    def __init__(self, *, max_streams: int = 4) -> None:
        self._free: list[Any] = []
        self._loaded = 0
        self._max = max_streams
        self._slots = trio.Semaphore(max_streams)
        self._initial_cmn = ""

    async def prepare(self) -> None:
        """Load a decoder (0.4 s) now, when none is idle, so that a session's first
        utterance does not wait for it at its end."""
        async with self._slots:  # holding a slot: never more than max_streams loaded
            if not self._free and self._loaded < self._max:
                self._free.append(await self._load())

    @asynccontextmanager
    async def open_stream(
        self, language: str, sample_rate: int, on_partial: Callable[[str], None]
    ) -> AsyncIterator[_OfflineStream]:
        if language.lower() not in _LANGUAGES:
            raise InvalidInput(
                "payload.language",
                f"the offline speech recogniser only knows en-US, not {language}",
            )
        if sample_rate != RATE:
            raise InvalidInput("payload.sample_rate", f"the offline recogniser takes {RATE} Hz")
        async with self._slots:
            decoder = self._free.pop() if self._free else await self._load()
            stream = _OfflineStream(decoder, on_partial)
            try:
                await trio.to_thread.run_sync(stream.start, self._initial_cmn)
                yield stream
            finally:
                if stream.open:  # left early: close the utterance before reuse
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(decoder.end_utt)
                self._free.append(decoder)

    async def _load(self) -> Any:
        self._loaded += 1
        # No flat-lexicon second pass: the final text comes 10 ms after the end of
        # the audio instead of 50-60 ms, and it was the same on the benchmark's phrases.
        decoder = await trio.to_thread.run_sync(partial(new_decoder, RATE, fwdflat=False))
        if not self._initial_cmn:
            self._initial_cmn = decoder.get_cmn(False)
        return decoder


class _OfflineStream:
    def __init__(self, decoder: Any, on_partial: Callable[[str], None]) -> None:
        self._decoder = decoder
        self._on_partial = on_partial
        self._since_partial = 0  # samples
        self._partial = ""
        self.open = False  # in an utterance: set and cleared on the decoder's thread

    def start(self, cmn: str) -> None:
        if cmn:
            self._decoder.set_cmn(cmn)
        self._decoder.start_utt()
        self.open = True

    async def feed(self, pcm: bytes) -> None:
        if not pcm:
            return
        self._since_partial += len(pcm) // 2
        want = self._since_partial >= RATE * _PARTIAL_MS // 1000
        if want:
            self._since_partial = 0
        text = await trio.to_thread.run_sync(_process, self._decoder, pcm, want)
        if text and text != self._partial:
            self._partial = text
            self._on_partial(text)

    async def finish(self) -> str:
        self.open = False  # the thread call below runs to its end even if cancelled
        return await trio.to_thread.run_sync(_end, self._decoder)


def _process(decoder: Any, pcm: bytes, want_hypothesis: bool) -> str:
    decoder.process_raw(pcm, False, False)
    if not want_hypothesis:
        return ""
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr).strip() if hypothesis is not None else ""


def _end(decoder: Any) -> str:
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return str(hypothesis.hypstr).strip() if hypothesis is not None else ""
