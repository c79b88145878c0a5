"""Text from clients that ends up somewhere it can do harm: a title, a log line.

A title is shown in lists on every device, so the characters that hide
or reorder text are taken out: C0/C1 controls (an ANSI escape, ``\\x1b``,
repaints a terminal), zero-width spaces and the bidirectional embeddings,
overrides and isolates (U+202E makes ``exe.txt`` read ``txt.exe``).
Line breaks and tabs become spaces. The zero-width joiner and non-joiner
stay: emoji sequences and several scripts need them. Message content is
stored verbatim; it never goes into a log line (``logs.py`` escapes what
does).
"""

from __future__ import annotations

import re

__all__ = ["HIDING", "clean_title"]

HIDING = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # controls (tab, newline kept apart: they become spaces)
    "\u061c\u180e\u200b\u200e\u200f"  # letter marks, zero-width space
    "\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"  # bidi embeddings/overrides/isolates, joiners
)
"""Characters that hide or reorder text, as a regex character class's inside."""

_HIDING = re.compile(f"[{HIDING}]")
_SPACES = re.compile(r"\s+")


def clean_title(text: str) -> str:
    """``text`` without hiding characters, its whitespace runs one space, stripped."""
    return _SPACES.sub(" ", _HIDING.sub("", text)).strip()
