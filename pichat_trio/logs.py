"""Logging set-up: one handler, and a filter that keeps secrets out of every line.

The filter sits on the handler, so it covers our loggers and hypercorn's
(access log included): ``token=...`` in any URL, ``Bearer ...`` values and
the literal values of secret settings are replaced before formatting.
Lines are readable text in development and one JSON object each in
production (``LOG_FORMAT``, ``log_format.py``), with the ids of what they
are about (``log_context.py``).
Control and bidirectional characters that came in with client text (an
action name, a header, an upstream's error) are escaped as ``\x1b`` or
``\u202e``: a client cannot repaint the terminal, reorder a line or forge
a new one. Tracebacks keep their line breaks.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

from .log_context import ContextFilter
from .log_format import TEXT_FORMAT, JsonLineFormatter
from .text import HIDING

__all__ = ["RedactingFilter", "configure_logging"]

_PATTERNS = (
    re.compile(r"(?i)(token=)[^&\s\"']+"),
    re.compile(r"(?i)(bearer\s+)[^\s\"']+"),
    re.compile(r"(?i)(api-key[\"']?\s*[:=]\s*[\"']?)[^\s\"',]+"),
)
_HIDING = re.compile(f"[{HIDING}\n\t\u2028\u2029]")
_HIDING_IN_TRACEBACK = re.compile(f"[{HIDING}\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= 8)

    def redact(self, text: str) -> str:
        for pattern in _PATTERNS:
            text = pattern.sub(r"\1[redacted]", text)
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _HIDING.sub(_escaped, self.redact(message))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = _HIDING_IN_TRACEBACK.sub(_escaped, self.redact(record.exc_text))
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure_logging(
    level: str, secrets: Iterable[str] = (), log_format: str = "text"
) -> logging.Handler:
    """Log to stderr through the redacting filter; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    redacting = RedactingFilter(secrets)
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter(redacting.redact))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(redacting)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
