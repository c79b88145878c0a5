"""What a voice session needs from the layers around it, as small protocols.

``VoiceEvents`` is implemented by the layer that speaks the protocol (it
turns each call into a frame for the session's connection alone);
``AnswerSource`` by the chat service (it stores the user's utterance, streams
the model's answer to all of the user's devices as usual, and stores what
the session says was heard).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ...errors import PichatError

__all__ = ["Answer", "AnswerSource", "VoiceEvents"]


class VoiceEvents(Protocol):
    """Never blocks: each call queues one frame for the session's connection."""

    def transcript(self, text: str, final: bool) -> None: ...

    def audio(self, message_id: str, seq: int, text: str, pcm: bytes, final: bool) -> None: ...

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


class AnswerSource(Protocol):
    async def start(self, text: str, wav: bytes, heard_so_far: Callable[[], str | None]) -> Answer:
        """Store ``text`` as the user's message (``wav`` as its audio) and start
        the answer; returns once the message is stored. ``heard_so_far`` says
        what of the answer was heard, should it be cut off from outside (the
        connection closing); None when the client never said."""
        ...
