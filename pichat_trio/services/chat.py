"""Sending a message and streaming the answer to every device of the user.

The requester's connection owns each generation: it runs as a task in that
connection's nursery, inside a cancel scope of its own. A disconnect, a
``cancel_generation``, a server shutdown or an upstream error ends the
scope, which closes the upstream HTTP stream at once (the model's stream is
wrapped in ``aclosing``). What must still happen after that (the final
frame, the stored partial answer, ``new_message``, typing off) runs in a
shielded cleanup with a deadline.

Nothing is lost: the user's message is committed before the upstream call,
the answer is stored as ``streaming`` when generation starts and saved at
most ``checkpoint_seconds`` apart by one process-wide task
(``run_checkpoints``), so the token loop never waits on the database.
Messages sent at the same moment share one transaction (``exchanges``), and
so do the final writes of answers that end together (``finishes``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

import trio
from trio_util import AsyncValue

from ..errors import Busy, InvalidInput, NotFound, PichatError, Unavailable
from ..events import Frame, TokenFrame, encode_event
from ..metrics import AnswerTiming, Metrics
from ..models import (
    Conversation,
    Exchange,
    ExchangeRequest,
    FinishRequest,
    Message,
    MessageStatus,
    Settings,
    Turn,
)
from ..ports import ChatModel, ChatRequest, ChatTurn
from ..text import clean_title
from .conversations import DEFAULT_TITLE
from .db import Database
from .fanout import Fanout, Origin
from .group_commit import GroupCommit, Ticket
from .unsaved import UnsavedAnswers

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
_CLEANUP_SECONDS = 5.0  # bound on the shielded writes after a generation ends
_HISTORY_ROWS = 200  # most recent messages considered for the prompt
_TITLE_CHARS = 60


def title_from(content: str, limit: int = _TITLE_CHARS) -> str:
    """A conversation title from the first message, cut at a word boundary."""
    text = clean_title(content)
    if len(text) <= limit:
        return text or DEFAULT_TITLE
    cut = text[: limit + 1].rsplit(" ", 1)[0]
    if len(cut) < limit // 2:  # one very long word: cut it
        cut = text[:limit]
    return cut.rstrip(" ,.;:-") + "…"


def _estimate_tokens(text: str) -> int:
    """About four characters a token for English; no tokenizer download at run time."""
    return len(text) // 4 + 4


@dataclass(eq=False)
class Generation:
    """One answer being generated; at most one per conversation."""

    origin: Origin
    conversation_id: str
    message_id: str | None = None
    key: tuple[str, str] = ("", "")  # (user id, conversation id): ``ChatService._active``
    reason: str = "interrupted"  # why it ended, when cancelled from outside
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    request: ChatRequest | None = None
    parts: list[str] = field(default_factory=list)
    saved_parts: int = 0
    ended: bool = False  # its final frame has gone out; it is being stored
    released: trio.Event = field(default_factory=trio.Event)
    ticket: Ticket[ExchangeRequest, Exchange | None] | None = None
    settled: trio.Event = field(default_factory=trio.Event)  # stored, or failed
    failure: Exception | None = None  # why the store failed
    question: Message | None = None  # the stored user message, for the other devices
    typing: str = ""  # the typing_indicator frame the requester got with message_sent
    timing: AnswerTiming = field(default_factory=AnswerTiming)  # for the figures


class ChatService:
    def __init__(
        self,
        db: Database,
        fanout: Fanout,
        model: ChatModel,
        *,
        history_tokens: int = 6000,
        max_tokens: int | None = None,
        checkpoint_seconds: float = 1.0,
        max_per_user: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self._metrics = Metrics() if metrics is None else metrics
        self._repo = db.repository
        self._fanout = fanout
        self.model = model
        self._history_tokens = history_tokens
        self._max_tokens = max_tokens
        self._checkpoint_seconds = checkpoint_seconds
        self.exchanges = GroupCommit(db, self._start_exchanges)
        """Group commit of ``send``'s transactions; the app's nursery runs it."""
        self.finishes = GroupCommit(db, self._finish_messages)
        """Group commit of the answers' final writes; the app's nursery runs it."""
        self.unsaved = UnsavedAnswers(db)
        """Final writes that met a database outage, tried until it is back (app's nursery)."""
        # Keyed by (user id, conversation id): whether a conversation is generating
        # is only ever looked up among the requester's own, so another user's id
        # is ``not_found`` like an unknown one, never ``busy``.
        self._active: dict[tuple[str, str], Generation] = {}
        self._per_user: dict[str, int] = {}  # generations running, by user id
        self._max_per_user = max_per_user  # 0: no cap
        self._running = AsyncValue(0)  # len(_active), for ``wait_idle`` (shutdown)

    # The repository's batch methods, looked up per batch (not bound at start-up).

    def _start_exchanges(self, batch: Sequence[ExchangeRequest]) -> list[Exchange | None]:
        return self._repo.start_exchanges(batch)

    def _finish_messages(
        self, batch: Sequence[FinishRequest]
    ) -> list[tuple[Message, Conversation] | None]:
        return self._repo.finish_messages(batch)

    # ------------------------------------------------------------ requests

    async def send(
        self,
        origin: Origin,
        conversation_id: str,
        content: str,
        *,
        is_audio: bool = False,
        audio_file: str | None = None,
        spawn: Callable[..., None],
        reply: Callable[[Message, str], None],
    ) -> None:
        """Store the user's message and start its answer; returns once it is stored.

        The answer's task is started (``spawn`` puts it in the requester's
        connection nursery) and the message queued for storing in one step.
        The task waits for the store, calls ``reply(message, typing)`` (the
        requester's reply, and the ``typing_indicator`` frame to write with
        it) and streams
        the answer, so the answer starts in the scheduler round that sees
        the store end, not a round later (a round is every runnable task:
        15-35 ms when 200 messages arrive together). If ``spawn`` refuses,
        nothing is stored and the conversation is free again. A failed store
        is raised here, for the request's own reply.
        """
        if not content.strip():
            raise InvalidInput("payload.content", "must not be empty")
        key = (origin.user.id, conversation_id)
        await self._wait_for_an_ended_answer(key)
        generation = Generation(origin, conversation_id, key=key)
        self._reserve(generation)
        try:
            spawn(self._answer, generation, reply)
        except BaseException:
            self._release(generation)
            raise
        # One transaction (shared with the messages sent at the same time): the
        # question, the answer's row, and the prompt's context.
        generation.ticket = self.exchanges.enqueue(
            ExchangeRequest(
                origin.user.id,
                conversation_id,
                content,
                is_audio,
                audio_file,
                (DEFAULT_TITLE, title_from(content)),
                _HISTORY_ROWS,
            )
        )
        await generation.settled.wait()
        if generation.failure is not None:
            raise generation.failure

    async def _answer(self, generation: Generation, reply: Callable[[Message, str], None]) -> None:
        ticket = generation.ticket
        assert ticket is not None
        cancelled: BaseException | None = None
        try:
            exchange = await self.exchanges.result(ticket)
            if exchange is None:
                raise NotFound("no such conversation")
        except BaseException as exc:
            # A cancellation that lands once the transaction has committed (the
            # wait lets it through after the commit) leaves an answer row that
            # says ``streaming``: it goes on below, to be finished as interrupted.
            exchange = self.exchanges.committed(ticket)
            if exchange is None:
                self._release(generation)
                generation.failure = exc if isinstance(exc, Exception) else None
                generation.settled.set()
                if generation.failure is not None:
                    return  # the request's own reply reports it
                raise
            cancelled = exc
            generation.scope.cancel()  # generate() ends at once, as interrupted
        generation.message_id = exchange.answer.id
        generation.request = self._prompt(exchange.settings, exchange.history)
        message = exchange.user_message
        typing = encode_event(
            "typing_indicator", {"conversation_id": generation.conversation_id, "is_typing": True}
        )
        # Before settled: ahead of any reply to the connection's next frame. The
        # other devices get new_message and the same typing_indicator (generate).
        reply(message, typing)
        generation.settled.set()
        generation.question = message
        generation.typing = typing
        # From here the answer row exists: generate() gives it its final status
        # and the user's other devices the stored question, whatever ends it.
        await self.generate(generation)
        if cancelled is not None:
            raise cancelled

    async def _wait_for_an_ended_answer(self, key: tuple[str, str]) -> None:
        """Raise ``Busy`` while the conversation is generating, or while its user
        runs ``max_per_user`` answers (``MAX_GENERATIONS_PER_USER``).

        An answer whose final frame has gone out is only being stored: a
        client may well send the next message at once, and it waits for that
        write (bounded by the cleanup deadline) rather than being refused.
        """
        current = self._active.get(key)
        if current is not None and current.ended:
            with trio.move_on_after(_CLEANUP_SECONDS):
                await current.released.wait()
        if key in self._active:
            raise Busy("an answer is still being generated in this conversation")
        if self._max_per_user and self._per_user.get(key[0], 0) >= self._max_per_user:
            raise Busy(f"at most {self._max_per_user} answers at once for one user")

    async def cancel(self, origin: Origin, conversation_id: str) -> str | None:
        """Stop the answer in ``conversation_id``; returns its message id."""
        generation = self._active.get((origin.user.id, conversation_id))
        if generation is None:
            raise NotFound("no answer is being generated in this conversation")
        generation.reason = "cancelled"
        generation.scope.cancel()
        return generation.message_id

    def cancel_all(self, reason: str = "interrupted") -> None:
        """At shutdown: end every generation of this process."""
        for generation in list(self._active.values()):
            generation.reason = reason
            generation.scope.cancel()

    def cancel_user(self, user_id: str, reason: str = "interrupted") -> int:
        """End every generation of one user (its token was revoked); how many."""
        ended = 0
        for generation in list(self._active.values()):
            if generation.origin.user.id == user_id:
                generation.reason = reason
                generation.scope.cancel()
                ended += 1
        return ended

    def is_generating(self, user_id: str, conversation_id: str) -> bool:
        return (user_id, conversation_id) in self._active

    async def wait_idle(self) -> None:
        """Wait until no answer is being generated."""
        await self._running.wait_value(0)

    @property
    def active(self) -> int:
        return len(self._active)

    # ---------------------------------------------------------- generation

    def _reserve(self, generation: Generation) -> None:
        self._active[generation.key] = generation
        user_id = generation.key[0]
        self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        self._running.value = len(self._active)

    def _release(self, generation: Generation) -> None:
        if self._active.get(generation.key) is generation:
            del self._active[generation.key]
            user_id = generation.key[0]
            left = self._per_user[user_id] - 1
            if left:
                self._per_user[user_id] = left
            else:
                del self._per_user[user_id]
        self._running.value = len(self._active)
        generation.released.set()

    async def generate(self, generation: Generation) -> None:
        """Stream one answer; owned by the requester's connection nursery.

        Whatever ends it once the message is stored (the other devices'
        ``new_message`` included), the answer gets its final frame and write.
        """
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
                cleanup.deadline = trio.current_time() + _CLEANUP_SECONDS
                try:
                    await self._finish(generation, finish, failure)
                finally:
                    self._release(generation)

    def _ended(self, generation: Generation, finish: str, failure: PichatError | None) -> None:
        """An answer's figures and its log line, once, when it ends."""
        tokens = len(generation.parts)
        self._metrics.answer_ended(finish, tokens, generation.timing, failure)
        log.info("answer %s ended: %s, %d tokens", generation.message_id, finish, tokens)

    async def _started(self, generation: Generation) -> None:
        """``new_message`` and ``typing_indicator`` to the user's other devices, in one
        write each; the requester had the typing frame with its ``message_sent``."""
        new = encode_event("new_message", {"message": generation.question})
        await self._fanout.texts_to_others(generation.origin, (new, generation.typing))

    def _prompt(self, settings: Settings, history: Sequence[Turn]) -> ChatRequest:
        """The request for the model: personality, then history within the budget."""
        budget = self._history_tokens - _estimate_tokens(settings.assistant_personality)
        turns: list[ChatTurn] = []
        for message in reversed(history):  # newest first, until the budget is spent
            if message.role == "assistant" and (message.status == "error" or not message.content):
                continue
            cost = _estimate_tokens(message.content)
            if turns and cost > budget:
                break
            budget -= cost
            turns.append(ChatTurn(role=message.role, content=message.content))
        turns.reverse()
        if settings.assistant_personality:
            turns.insert(0, ChatTurn(role="system", content=settings.assistant_personality))
        return ChatRequest(
            model=settings.selected_model, messages=turns, max_tokens=self._max_tokens
        )

    async def _stream(self, generation: Generation, request: ChatRequest) -> str:
        assert generation.message_id is not None
        publish = self._fanout.hub.publish
        user_id = generation.origin.user.id
        prefix = TokenFrame.prefix_for(generation.conversation_id, generation.message_id)
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
                    await publish(user_id, TokenFrame(prefix, generation.message_id, delta.text))
                if delta.finish_reason is not None:
                    finish = delta.finish_reason
        return finish

    async def run_checkpoints(self) -> None:
        """Save every growing answer each ``checkpoint_seconds``, in one transaction.

        One task for the whole process (the app's nursery runs it until
        shutdown), so N streams cost one UPDATE batch a second, not N
        transactions, and no token ever waits on the database.
        """
        while True:
            await trio.sleep(self._checkpoint_seconds)
            batch = [  # not the ended ones: their final write is on its way
                (generation, len(generation.parts))
                for generation in self._active.values()
                if generation.message_id is not None
                and not generation.ended
                and len(generation.parts) != generation.saved_parts
            ]
            if not batch:
                continue
            rows = [
                (g.origin.user.id, g.message_id, "".join(g.parts[:count])) for g, count in batch
            ]
            try:
                await self._db.run(self._repo.checkpoint_messages, rows)
            except Exception:
                log.exception("checkpoint of %d answers failed; will retry", len(rows))
            else:
                for generation, count in batch:
                    generation.saved_parts = count

    async def _finish(
        self, generation: Generation, finish: str, failure: PichatError | None
    ) -> None:
        """The end of a stream, for every connection still there. Runs shielded."""
        origin = generation.origin
        user_id = origin.user.id
        conversation_id = generation.conversation_id
        assert generation.message_id is not None  # set by send(), before generate() runs
        status = _STATUS.get(finish, "complete")
        content = "".join(generation.parts)
        final = {
            "conversation_id": conversation_id,
            "message_id": generation.message_id,
            "token": "",
            "finished": True,
            "finish_reason": finish if finish in _STATUS else "stop",
        }
        await self._fanout.to_user(user_id, "message_stream", final)
        generation.ended = True
        if failure is not None:
            await self._tell_requester(origin, failure)
        stored = await self._store_final(generation, content, status)
        typing = {"conversation_id": conversation_id, "is_typing": False}
        if stored is None:
            await self._fanout.to_user(user_id, "typing_indicator", typing)
            return
        message, conversation = stored
        await self._fanout.to_user_together(  # one write per connection
            user_id,
            [
                ("new_message", {"message": message}),
                ("typing_indicator", typing),
                ("conversation_updated", conversation),
            ],
        )

    async def _store_final(
        self, generation: Generation, content: str, status: MessageStatus
    ) -> tuple[Message, Conversation] | None:
        assert generation.message_id is not None
        request = FinishRequest(generation.origin.user.id, generation.message_id, content, status)
        for attempt in range(3):
            try:
                return await self.finishes.submit(request)
            except Unavailable:
                self.unsaved.keep(request)
                return None
            except Exception:
                log.exception(
                    "storing answer %s failed (attempt %d, %d characters kept in the last "
                    "checkpoint)",
                    generation.message_id,
                    attempt + 1,
                    sum(map(len, generation.parts[: generation.saved_parts])),
                )
                await trio.sleep(0.2 * (attempt + 1))
        return None

    async def _tell_requester(self, origin: Origin, error: PichatError) -> None:
        text = encode_event(
            "error",
            {"code": error.code, "message": error.message, "request_action": "send_message"},
            origin.request_id,
        )
        await self._fanout.hub.publish(origin.user.id, Frame(None, origin.connection_id, text))
