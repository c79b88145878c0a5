"""What a log line is about: the connection, user, request, conversation, upstream call.

Each id lives in a context variable. Trio copies the spawning task's
context into every task it starts, so an id set by the connection's task
(``asgi.py``) or by the router for one request is seen by every line logged
by the work it starts (an answer's generation included), and by nothing
else. ``ContextFilter`` copies the ids that are set onto each record, where
the JSON formatter finds them (``log_format.py``).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

__all__ = [
    "FIELDS",
    "ContextFilter",
    "bind_connection",
    "bind_request",
    "bind_upstream_request",
]

connection_id: ContextVar[str | None] = ContextVar("connection_id", default=None)
user_id: ContextVar[str | None] = ContextVar("user_id", default=None)
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
conversation_id: ContextVar[str | None] = ContextVar("conversation_id", default=None)
upstream_request_id: ContextVar[str | None] = ContextVar("upstream_request_id", default=None)

_VARIABLES = (connection_id, user_id, request_id, conversation_id, upstream_request_id)
FIELDS = tuple(variable.name for variable in _VARIABLES)
"""The record attributes (and JSON keys) the filter may add."""

_UPSTREAM_HEADERS = ("apim-request-id", "x-request-id", "x-ms-request-id")
"""Where Azure OpenAI (and OpenAI-compatible servers) name their request."""


def bind_connection(connection: str, user: str) -> None:
    """The connection and its user, for the connection's task and all it starts."""
    connection_id.set(connection)
    user_id.set(user)


def bind_request(request: str | None, conversation: str | None) -> None:
    """One request's ids, until the next request of the same task replaces them."""
    request_id.set(request)
    conversation_id.set(conversation)


def bind_upstream_request(headers: object) -> None:
    """The upstream's request id, from a response's headers (a mapping), when it has one."""
    get = getattr(headers, "get", None)
    if get is None:
        return
    for name in _UPSTREAM_HEADERS:
        value = get(name)
        if value:
            upstream_request_id.set(str(value)[:128])
            return


class ContextFilter(logging.Filter):
    """Adds the ids that are set to every record passing the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        for variable in _VARIABLES:
            value = variable.get()
            if value is not None and not hasattr(record, variable.name):
                setattr(record, variable.name, value)
        return True
