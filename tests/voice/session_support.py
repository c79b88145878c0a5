"""Fakes of the voice session's contracts, and a session wired to real engines."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
import trio.lowlevel

from pichat_trio.adapters.speech.local import OfflineSpeechEngine
from pichat_trio.adapters.speech.local_stream import OfflineStreamingRecognizer
from pichat_trio.adapters.speech.pcm_speaker import EnginePcmSpeaker
from pichat_trio.adapters.speech.vad import WebRtcVoiceDetector
from pichat_trio.errors import PichatError
from pichat_trio.models import Message, VoiceSettings
from pichat_trio.ports import StreamingRecognizer
from pichat_trio.services.voice import VoiceOptions, VoiceSession
from pichat_trio.services.voice.contracts import AnswerRequest

from .voice_support import RATE

__all__ = ["FakeAnswers", "Recorded", "open_session"]


@dataclass
class Recorded:
    """What the session told its client, in order."""

    items: list[tuple[Any, ...]] = field(default_factory=list)
    _changed: trio.Event = field(default_factory=trio.Event)

    def transcript(self, text: str, final: bool) -> None:
        self._add(("transcript", text, final))

    def audio(self, message_id: str, seq: int, text: str, pcm: bytes, final: bool) -> None:
        self._add(("audio", message_id, seq, text, len(pcm), final))

    def message_sent(self, message: Message) -> None:
        self._add(("message_sent", message.id))

    def failed(self, error: PichatError) -> None:
        self._add(("failed", error.code, error.message))

    def _add(self, item: tuple[Any, ...]) -> None:
        self.items.append(item)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [item for item in self.items if item[0] == kind]

    async def wait(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._changed.wait()


class FakeAnswer:
    def __init__(self, message_id: str, tokens: list[str], hold_after: int | None) -> None:
        self.message_id = message_id
        self._tokens = tokens
        self.hold_after = hold_after  # tokens sent before waiting for ``proceed``
        self.proceed = trio.Event()
        self.interrupted: list[str | None] = []
        self.closed = trio.Event()  # the token stream was closed (the upstream request)
        self.generated = ""

    async def tokens(self) -> AsyncIterator[str]:
        try:
            for index, token in enumerate(self._tokens):
                if index == self.hold_after:
                    await self.proceed.wait()
                await trio.lowlevel.checkpoint()
                self.generated += token
                yield token
        finally:
            self.closed.set()

    def interrupt(self, heard: str | None) -> None:
        self.interrupted.append(heard)

    async def wait_stored(self) -> None:
        pass


@dataclass
class FakeAnswers:
    """Answers each utterance with ``script`` (tokens), recording what it was asked."""

    script: list[str]
    hold_after: int | None = None
    asked: list[tuple[str, bytes]] = field(default_factory=list)
    answers: list[FakeAnswer] = field(default_factory=list)

    async def start(self, request: AnswerRequest) -> FakeAnswer:
        self.asked.append((request.text, request.wav))
        answer = FakeAnswer(f"answer-{len(self.answers)}", self.script, self.hold_after)
        self.answers.append(answer)
        return answer


@asynccontextmanager
async def open_session(
    answers: FakeAnswers,
    *,
    recognizer: StreamingRecognizer | None = None,
    **options: Any,
) -> AsyncIterator[tuple[VoiceSession, Recorded]]:
    events = Recorded()
    session = VoiceSession(
        "voice-1",
        VoiceOptions(**{"sample_rate": RATE, "silence_ms": 500, **options}),
        detector=WebRtcVoiceDetector(RATE),
        recognizer=recognizer or OfflineStreamingRecognizer(max_streams=1),
        speaker=EnginePcmSpeaker(OfflineSpeechEngine()),
        answers=answers,
        events=events,
        voice=VoiceSettings(),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(session.run)
        yield session, events
        nursery.cancel_scope.cancel()
