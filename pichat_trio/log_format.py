"""One JSON object per log line, for production (App Service, Azure Monitor, any collector).

The formatting is python-json-logger's; what is ours is the field names
(``time``, ``level``, ``logger``, ``message``, plus the ids of
``log_context``) and that tracebacks pass the same redaction as messages:
the formatter formats an exception itself, after the handler's filter has
run, so it is given the filter's ``redact``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

__all__ = ["TEXT_FORMAT", "JsonLineFormatter"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""Development's readable lines."""

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class JsonLineFormatter(JsonFormatter):
    def __init__(self, redact: Callable[[str], str] = lambda text: text) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
        self._redact = redact

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """RFC 3339 in UTC, to the microsecond, like the protocol's times."""
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")

    def formatException(self, ei: _ExcInfo) -> Any:
        return self._redact(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> Any:
        return self._redact(str(super().formatStack(stack_info)))
