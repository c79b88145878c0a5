"""What a voice session needs from the layers around it, as small protocols.

``VoiceEvents`` is implemented by the layer that speaks the protocol (it
turns each call into a frame for the session's connection alone);
``AnswerSource`` by the chat service (it stores the user's utterance, streams
the model's answer to all of the user's devices as usual, and stores what
the session says was heard).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from ...errors import PichatError
from ...models import Message

__all__ = ["Answer", "AnswerRequest", "AnswerSource", "VoiceEvents"]


class VoiceEvents(Protocol):
    """Never blocks: each call queues one frame for the session's connection."""

    def transcript(self, text: str, final: bool) -> None: ...

    def audio(self, message_id: str, seq: int, text: str, pcm: bytes, final: bool) -> None: ...

    def message_sent(self, message: Message) -> None:
        """An utterance was stored as the user's message; its answer comes next."""
        ...

    def failed(self, error: PichatError) -> None:
        """An error of the session that leaves it usable (``unsupported_audio``, ...)."""
        ...


class Answer(Protocol):
    """One answer being generated for an utterance."""

    @property
    def message_id(self) -> str: ...

    def tokens(self) -> AsyncIterator[str]:
        """The answer's text as it is generated; ends with the generation, however
        it ends (an interrupt included)."""
        ...

    def interrupt(self, heard: str | None) -> None:
        """Barge-in: stop generating at once (the upstream request is closed),
        and store ``heard`` as the answer, status ``interrupted``, whether the
        generation was still running or had finished; ``None`` keeps what was
        generated. Never blocks."""
        ...

    async def wait_stored(self) -> None:
        """Until the answer's final write (and an interrupt's) is done."""
        ...


@dataclass(frozen=True, eq=False)
class AnswerRequest:
    """An utterance to answer, and where its answer runs.

    ``text`` is stored as the user's message, ``wav`` as its audio. The
    answer's task runs in ``nursery`` (the session's: the session's end ends
    it), and the stored message goes out as ``events.message_sent``, ahead of
    the answer's first token. ``heard_so_far`` says what of the answer was
    heard, should it be cut off from outside (the session or connection
    ending); None when the client never said.
    """

    text: str
    wav: bytes
    heard_so_far: Callable[[], str | None]
    nursery: trio.Nursery
    events: VoiceEvents


class AnswerSource(Protocol):
    async def start(self, request: AnswerRequest) -> Answer:
        """Store the utterance and start its answer; returns once the message is
        stored and ``message_sent`` queued."""
        ...
