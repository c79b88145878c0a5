"""One answer being generated: its state from the reservation to the final write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from ..domain.events import Origin
from ..metrics import AnswerTiming
from ..models import Exchange, ExchangeRequest, Message
from ..ports import ChatRequest
from .group_commit import Ticket

__all__ = ["Generation"]


@dataclass(eq=False)
class Generation:
    """At most one per conversation. ``ChatService.reserve`` makes it; the handle the
    request's layer passes to ``store``, ``stored`` and ``generate``."""

    user_id: str
    origin: Origin
    conversation_id: str
    exchange: ExchangeRequest  # what ``store`` queues
    message_id: str | None = None
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
    cancelled: BaseException | None = None  # a cancellation that came after the commit
    question: Message | None = None  # the stored user message, for the other devices
    timing: AnswerTiming = field(default_factory=AnswerTiming)  # for the figures
    listener: Callable[[str], None] | None = None  # each token as generated (a voice session)
    heard: str | None = None  # set by a barge-in: stored instead of what was generated
    # A voice session's account of what was heard, for an answer cut off from
    # outside (a disconnect): None where it does not know.
    heard_so_far: Callable[[], str | None] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.user_id, self.conversation_id)
