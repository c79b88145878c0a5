"""Sending a message and streaming the answer to every device of the user.

The request's layer drives one answer in steps, each returning to it:
``reserve`` (the conversation is free, or ``Busy``), ``store`` (the
question and the answer's row committed, awaited by the request),
``stored`` (the stored question, awaited by the answer's task) and
``generate`` (the stream). The answer's task belongs to the requester's
connection: it runs in that connection's nursery, inside a cancel scope of
its own. A disconnect, a ``cancel_generation``, a server shutdown or an
upstream error ends the scope, which closes the upstream HTTP stream at
once (the model's stream is wrapped in ``aclosing``). What must still
happen after that (the final event, the stored partial answer, typing
off) runs in a shielded cleanup with a deadline.

What the user's devices see goes out as domain events to the hub
(``domain/events.py``); this module never sees a frame or a connection.
Nothing is lost: the user's message is committed before the upstream
call, and the answer is checkpointed while it grows (``answer_writes``).
Messages sent at the same moment share one transaction (``exchanges``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import aclosing

import trio

from ..domain.events import (
    AnswerSaved,
    GenerationFinished,
    GenerationStarted,
    Origin,
    RequestFailed,
    TokenAdded,
)
from ..errors import InvalidInput, NotFound, PichatError
from ..metrics import Metrics
from ..models import Exchange, ExchangeRequest, Message, MessageStatus, User
from ..ports import ChatModel, ChatRequest, Hub, Leases
from .answer_writes import AnswerWrites
from .conversations import DEFAULT_TITLE
from .db import Database
from .generation import Generation
from .group_commit import GroupCommit
from .prompt import HISTORY_ROWS, build_prompt, title_from
from .reservations import CLEANUP_SECONDS, Reservations

__all__ = ["ChatService", "Generation", "title_from"]

log = logging.getLogger(__name__)

_STATUS: dict[str, MessageStatus] = {
    "stop": "complete",
    "length": "complete",
    "content_filter": "complete",
    "cancelled": "cancelled",
    "interrupted": "interrupted",
    "error": "error",
}


class ChatService:
    def __init__(
        self,
        db: Database,
        hub: Hub,
        model: ChatModel,
        *,
        history_tokens: int = 6000,
        max_tokens: int | None = None,
        checkpoint_seconds: float = 1.0,
        max_per_user: int = 0,
        metrics: Metrics | None = None,
        leases: Leases | None = None,
    ) -> None:
        self._repo = db.repository
        self._metrics = Metrics() if metrics is None else metrics
        self._hub = hub
        self.model = model
        self._history_tokens = history_tokens
        self._max_tokens = max_tokens
        self._leases = leases
        """With several instances: one answer per conversation across all of them."""
        self._active = Reservations(max_per_user, leases)
        self._writes = AnswerWrites(db, checkpoint_seconds)
        self.exchanges = GroupCommit(db, self._start_exchanges)
        """Group commit of ``store``'s transactions; the app's nursery runs it."""
        self.finishes = self._writes.finishes
        """Group commit of the answers' final writes; the app's nursery runs it."""
        self.unsaved = self._writes.unsaved
        """Final writes that met a database outage, tried until it is back (app's nursery)."""

    def _start_exchanges(self, batch: Sequence[ExchangeRequest]) -> list[Exchange | None]:
        return self._repo.start_exchanges(batch)  # looked up per batch, not bound at start-up

    async def run_checkpoints(self) -> None:
        """The process-wide checkpoint task (``AnswerWrites.run_checkpoints``)."""
        await self._writes.run_checkpoints(self._active)

    # ------------------------------------------------------------ requests

    async def reserve(
        self,
        user: User,
        origin: Origin,
        conversation_id: str,
        content: str,
        *,
        is_audio: bool = False,
        audio_file: str | None = None,
    ) -> Generation:
        """Claim the conversation for an answer to ``content``: the handle of that answer.

        Raises ``Busy`` if the conversation is generating or the user is at
        their cap. Nothing is stored yet: the caller starts the answer's
        task (``stored`` then ``generate``), then calls ``store``; if it
        cannot start the task, ``abandon`` frees the conversation.
        """
        if not content.strip():
            raise InvalidInput("payload.content", "must not be empty")
        key = (user.id, conversation_id)
        await self._active.wait_turn(key)
        # One transaction (shared with the messages sent at the same time): the
        # question, the answer's row, and the prompt's context.
        exchange = ExchangeRequest(
            user.id,
            conversation_id,
            content,
            is_audio,
            audio_file,
            (DEFAULT_TITLE, title_from(content)),
            HISTORY_ROWS,
        )
        generation = Generation(user.id, origin, conversation_id, exchange)
        self._active.reserve(generation)
        await self._active.claim(generation)
        return generation

    def abandon(self, generation: Generation) -> None:
        """Free a reserved conversation whose answer was never started."""
        self._active.release(generation)

    async def store(self, generation: Generation) -> None:
        """Queue the exchange's transaction; return once it is stored (or raise why not).

        The answer's task is already started and waits for the same store
        (``stored``), so the answer starts in the scheduler round that sees
        the store end, not a round later (a round is every runnable task:
        15-35 ms when 200 messages arrive together). Returns after the
        task has queued its reply: replies keep their order, and a read
        after a send sees the message.
        """
        generation.ticket = self.exchanges.enqueue(generation.exchange)
        await generation.settled.wait()
        if generation.failure is not None:
            raise generation.failure

    async def stored(self, generation: Generation) -> Message | None:
        """In the answer's task: wait for the store; the stored question, or None if the
        store failed (``store`` raises it, for the request's own reply)."""
        ticket = generation.ticket
        assert ticket is not None
        try:
            exchange = await self.exchanges.result(ticket)
            if exchange is None:
                raise NotFound("no such conversation")
        except BaseException as exc:
            # A cancellation that lands once the transaction has committed (the
            # wait lets it through after the commit) leaves an answer row that
            # says ``streaming``: it goes on, to be finished as interrupted.
            exchange = self.exchanges.committed(ticket)
            if exchange is None:
                self._active.release(generation)
                generation.failure = exc if isinstance(exc, Exception) else None
                generation.settled.set()
                if generation.failure is not None:
                    return None
                raise
            generation.cancelled = exc  # raised again once generate() has ended
            generation.scope.cancel()  # generate() ends at once, as interrupted
        generation.message_id = exchange.answer.id
        generation.request = build_prompt(
            exchange.settings, exchange.history, self._history_tokens, self._max_tokens
        )
        generation.question = exchange.user_message
        return exchange.user_message

    async def generate(self, generation: Generation) -> None:
        """Stream one answer; owned by the requester's connection nursery.

        Called once the request's reply is queued: ``store`` returns from
        here. Whatever ends it, the answer gets its final event and write,
        and the other devices the stored question.
        """
        generation.settled.set()
        finish = "interrupted"
        failure: PichatError | None = None
        try:
            with generation.scope:
                try:
                    assert generation.request is not None
                    await self._started(generation)
                    finish = await self._stream(generation, generation.request)
                except PichatError as error:
                    finish, failure = "error", error
                except Exception:
                    log.exception(
                        "generation failed in conversation %s", generation.conversation_id
                    )
                    finish = "error"
                    failure = PichatError("the answer could not be generated")
            if generation.scope.cancelled_caught:
                finish = generation.reason
        finally:
            self._ended(generation, finish, failure)
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + CLEANUP_SECONDS
                try:
                    await self._finish(generation, finish, failure)
                finally:
                    self._active.release(generation)
        if generation.cancelled is not None:
            raise generation.cancelled

    # ------------------------------------------------------------ control

    async def cancel(self, user: User, conversation_id: str) -> str | None:
        """Stop the answer in ``conversation_id``, on this instance or the one that runs
        it; returns its message id."""
        found, message_id = self.cancel_here(user.id, conversation_id)
        if not found and self._leases is not None:
            found, message_id = await self._leases.cancel_elsewhere(user.id, conversation_id)
        if not found:
            raise NotFound("no answer is being generated in this conversation")
        return message_id

    async def stop(self, user: User, conversation_id: str) -> None:
        """Stop the conversation's answer wherever it runs, if it has one (it was deleted)."""
        found, _ = self.cancel_here(user.id, conversation_id)
        if not found and self._leases is not None:
            await self._leases.cancel_elsewhere(user.id, conversation_id)

    def cancel_here(self, user_id: str, conversation_id: str) -> tuple[bool, str | None]:
        """Stop the answer this instance runs in the conversation, if any; its message id."""
        generation = self._active.get(user_id, conversation_id)
        if generation is None:
            return False, None
        generation.reason = "cancelled"
        generation.scope.cancel()
        return True, generation.message_id

    def interrupt(self, generation: Generation, heard: str | None) -> bool:
        """Barge-in: end the answer now, storing ``heard`` as its content (None: what
        was generated). False when it is no longer generating (``store_heard`` then)."""
        if self._active.get(generation.user_id, generation.conversation_id) is not generation:
            return False
        if generation.ended:
            return False
        generation.heard = heard
        generation.reason = "interrupted"
        generation.scope.cancel()
        return True

    async def store_heard(self, generation: Generation, heard: str) -> None:
        """An answer interrupted after it was stored: store what was heard instead, and
        show every device the message as stored."""
        stored = await self._writes.store_final(generation, heard, "interrupted")
        message, conversation = (None, None) if stored is None else stored
        await self._hub.publish(
            generation.user_id,
            AnswerSaved(generation.user_id, generation.conversation_id, message, conversation),
        )

    def cancel_all(self, reason: str = "interrupted") -> None:
        """At shutdown: end every generation of this process."""
        for generation in self._active:
            generation.reason = reason
            generation.scope.cancel()

    def cancel_user(self, user_id: str, reason: str = "interrupted") -> int:
        """End every generation of one user (its token was revoked); how many."""
        ended = 0
        for generation in self._active:
            if generation.user_id == user_id:
                generation.reason = reason
                generation.scope.cancel()
                ended += 1
        return ended

    def is_generating(self, user_id: str, conversation_id: str) -> bool:
        return self._active.get(user_id, conversation_id) is not None

    async def wait_idle(self) -> None:
        """Wait until no answer is being generated."""
        await self._active.wait_idle()

    @property
    def active(self) -> int:
        return len(self._active)

    # ---------------------------------------------------------- generation

    def _ended(self, generation: Generation, finish: str, failure: PichatError | None) -> None:
        """An answer's figures and its log line, once, when it ends."""
        tokens = len(generation.parts)
        self._metrics.answer_ended(finish, tokens, generation.timing, failure)
        log.info("answer %s ended: %s, %d tokens", generation.message_id, finish, tokens)

    async def _started(self, generation: Generation) -> None:
        """The stored question and typing on, for the user's other devices."""
        assert generation.question is not None and generation.message_id is not None
        user_id = generation.user_id
        await self._hub.publish(
            user_id,
            GenerationStarted(
                user_id, generation.origin, generation.question, generation.message_id
            ),
        )

    async def _stream(self, generation: Generation, request: ChatRequest) -> str:
        message_id = generation.message_id
        assert message_id is not None
        publish = self._hub.publish
        user_id = generation.user_id
        conversation_id = generation.conversation_id
        parts = generation.parts
        finish = "stop"
        timing = generation.timing
        timing.started = trio.current_time()
        async with aclosing(self.model.stream_reply(request)) as stream:
            async for delta in stream:
                if delta.text:
                    if not parts:
                        timing.first_token = trio.current_time()
                    parts.append(delta.text)
                    if generation.listener is not None:
                        generation.listener(delta.text)
                    await publish(
                        user_id, TokenAdded(user_id, conversation_id, message_id, delta.text)
                    )
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
        return finish

    async def _finish(
        self, generation: Generation, finish: str, failure: PichatError | None
    ) -> None:
        """The end of a stream, for every connection still there. Runs shielded."""
        user_id = generation.user_id
        conversation_id = generation.conversation_id
        message_id = generation.message_id
        assert message_id is not None  # set by stored(), before generate() runs
        publish = self._hub.publish
        reason = finish if finish in _STATUS else "stop"
        await publish(user_id, GenerationFinished(user_id, conversation_id, message_id, reason))
        generation.ended = True
        if failure is not None:
            await publish(
                user_id,
                RequestFailed(
                    user_id, generation.origin, "send_message", failure.code, failure.message
                ),
            )
        # After ``ended``: a barge-in from now on stores its text by itself (store_heard).
        content = _content(generation, finish)
        status = _STATUS.get(finish, "complete")
        stored = await self._writes.store_final(generation, content, status)
        message, conversation = (None, None) if stored is None else stored
        await publish(user_id, AnswerSaved(user_id, conversation_id, message, conversation))


def _content(generation: Generation, finish: str) -> str:
    """What to store: the answer, or of an interrupted spoken answer what was heard."""
    if generation.heard is not None:
        return generation.heard
    if finish == "interrupted" and generation.heard_so_far is not None:
        heard = generation.heard_so_far()
        if heard is not None:
            return heard
    return "".join(generation.parts)
