"""Markers in a message (``[fake:429]``, ``[fake:drop:5]``...): a behaviour per request."""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from .records import Behaviour

__all__ = ["MARKER", "apply_markers", "last_user_text"]

logger = logging.getLogger(__name__)

MARKER = re.compile(r"\[fake:([a-z-]+|\d{3})(?::([0-9.]+))?\]")


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def apply_markers(behaviour: Behaviour, text: str, hits: dict[str, int]) -> Behaviour:
    changes: dict[str, Any] = {}
    for name, value in MARKER.findall(text):
        number = float(value) if value else None
        count = int(number) if number is not None else None
        if name.isdigit():
            if count is not None:
                seen = hits.get(text, 0)
                hits[text] = seen + 1
                if seen >= count:
                    continue
            changes["status"] = int(name)
        elif name == "tokens" and count is not None:
            changes["tokens"] = count
        elif name == "rate" and number is not None:
            changes["rate"] = number
        elif name == "length":
            changes["finish_reason"] = "length"
        elif name == "filter":
            if count is None:
                changes["prompt_filter"] = True
            else:
                changes["filter_after"] = count
        elif name in ("drop", "stall", "truncate") and count is not None:
            changes[f"{name}_after"] = count
        elif name == "retry-after" and number is not None:
            changes["retry_after"] = number
        else:
            logger.warning("unknown fake marker [fake:%s%s]", name, f":{value}" if value else "")
    return dataclasses.replace(behaviour, **changes) if changes else behaviour
