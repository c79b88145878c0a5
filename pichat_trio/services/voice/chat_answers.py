"""The voice session's answers, from the chat service.

An utterance becomes an ordinary ``send_message``, in the same steps
(``reserve``, the answer's task, ``store``): the user message is stored with
its WAV as ``audio_file``, the answer streams to every device of the user,
and its tokens also come here, for the session to speak. The answer's task
runs in the session's nursery, so the session's end ends it (stored as
heard); the stored question is an event of the session (``message_sent``).
A barge-in ends the generation with the heard text as its content; one that
comes after the answer was stored stores the heard text in its place.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from ...domain.events import Origin
from ...models import User
from ..chat import ChatService
from ..generation import Generation
from .contracts import AnswerRequest, VoiceEvents

__all__ = ["ChatAnswers"]

log = logging.getLogger(__name__)


class ChatAnswers:
    """``AnswerSource`` for one session: its user, connection and conversation."""

    def __init__(
        self,
        chat: ChatService,
        user: User,
        origin: Origin,
        conversation_id: str,
        *,
        save_audio: Callable[[str, bytes], Awaitable[str]] | None,
    ) -> None:
        self._chat = chat
        self._user = user
        self._origin = origin
        self.conversation_id = conversation_id
        self._save_audio = save_audio

    async def start(self, request: AnswerRequest) -> _ChatAnswer:
        audio_file = None
        if self._save_audio is not None:
            audio_file = await self._save_audio(self._user.id, request.wav)
        chat = self._chat
        generation = await chat.reserve(
            self._user,
            self._origin,
            self.conversation_id,
            request.text,
            is_audio=True,
            audio_file=audio_file,
        )
        answer = _ChatAnswer(chat, generation)
        generation.listener = answer.token
        generation.heard_so_far = request.heard_so_far
        try:
            request.nursery.start_soon(answer.run, request.events)
        except BaseException:
            chat.abandon(generation)  # nothing was stored: the conversation is free again
            raise
        await chat.store(generation)
        assert generation.message_id is not None  # set once stored
        answer.message_id = generation.message_id
        return answer


class _ChatAnswer:
    def __init__(self, chat: ChatService, generation: Generation) -> None:
        self._chat = chat
        self._generation = generation
        # Bounded by the answer itself (max_tokens): the token loop never waits here.
        self._send, self._receive = trio.open_memory_channel[str](math.inf)
        self.message_id = ""
        self._stored = trio.Event()  # the generation's task has ended
        self._interrupted = False
        self._pending: str | None = None  # heard text to store once the answer is stored

    async def run(self, events: VoiceEvents) -> None:
        """The answer's task, in the session's nursery."""
        try:
            question = await self._chat.stored(self._generation)
            if question is None:
                return  # the store failed: start() raises it
            events.message_sent(question)  # before generate(): ahead of the first token
            await self._chat.generate(self._generation)
        finally:
            self._send.close()
            self._stored.set()

    def token(self, text: str) -> None:
        self._send.send_nowait(text)

    async def tokens(self) -> AsyncIterator[str]:
        async for text in self._receive:
            yield text

    def interrupt(self, heard: str | None) -> None:
        if self._interrupted:
            return
        self._interrupted = True
        stopped = self._chat.interrupt(self._generation, heard)
        if not stopped and heard is not None:
            self._pending = heard  # the answer was stored whole: wait_stored replaces it

    async def wait_stored(self) -> None:
        await self._stored.wait()
        heard, self._pending = self._pending, None
        if heard is None:
            return
        try:
            await self._chat.store_heard(self._generation, heard)
        except Exception:
            log.exception("storing the heard part of answer %s failed", self.message_id)
