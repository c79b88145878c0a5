"""What the fake is told to do (``Behaviour``) and what it saw (``RecordedRequest``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import trio

__all__ = ["Behaviour", "EndedBy", "RecordedRequest"]

EndedBy = Literal["complete", "client", "dropped"]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the fake answers. ``None`` means "not this failure"."""

    tokens: int = 20
    rate: float = 0.0
    """Tokens per second; 0 sends them as fast as the socket takes them."""
    finish_reason: Literal["stop", "length"] = "stop"
    status: int | None = None
    """Answer every request with this HTTP error instead of a stream."""
    retry_after: float | None = 1.0
    """Seconds, sent as ``retry-after`` and ``retry-after-ms`` on 429 and 503."""
    prompt_filter: bool = False
    """Answer HTTP 400 with Azure's content-filter error."""
    filter_after: int | None = None
    drop_after: int | None = None
    stall_after: int | None = None
    truncate_after: int | None = None


@dataclass(eq=False)
class RecordedRequest:
    """One request as the fake saw it (the key value never recorded).

    ``ended_by`` says how the exchange ended: ``complete`` (the fake wrote
    the whole response), ``client`` (the client closed the connection, or a
    send failed, first) or ``dropped`` (the fake closed it on purpose).
    ``disconnected_at`` is the trio time of that end.
    """

    index: int
    method: str
    target: str
    route: Literal["azure", "openai", "other"]
    deployment: str | None
    headers: dict[str, str]
    body: Any
    started_at: float
    status: int = 200
    first_token_at: float | None = None
    tokens_sent: int = 0
    disconnected_at: float | None = None
    ended_by: EndedBy | None = None
    _ended: trio.Event = field(default_factory=trio.Event, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        return messages if isinstance(messages, list) else []

    def _end(self, how: EndedBy) -> None:
        if self.ended_by is None:
            self.ended_by = how
            self.disconnected_at = trio.current_time()
            self._ended.set()
