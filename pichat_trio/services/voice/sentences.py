"""An answer cut into sentences as its tokens arrive, each with what is read aloud.

Each ``Sentence`` is a verbatim slice of the answer (``text``) and the words
a voice should say for it (``spoken``): the sentences' texts concatenate to
the answer exactly, whatever the tokens were. A boundary is only decided
once the characters after it are known ("3." may become "3.14"), so the
result never depends on how the answer was cut into tokens.

Boundaries: ``.``, ``!``, ``?`` (with closing quotes and brackets) followed
by white space, except after an abbreviation ("e.g.", "Dr."), an initial
("J. Smith"), or a list number ("1. "); every line end (list items,
headings, paragraphs); and, in a very long sentence, a clause (", ", "; ").
Text that says nothing aloud (a fenced code block, a rule, a table's
separator) is carried into the next sentence's ``text``, or comes last with
``spoken == ""``. ``spoken`` drops Markdown's symbols: emphasis, heading and
list markers, inline code's backticks, links' targets, tables' pipes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sentence", "SentenceSplitter", "speakable"]

_ENDS = ".!?"
_CLOSERS = "\"')]}*_\u00bb\u201d\u2019"  # quotes, brackets, emphasis
# Abbreviations that never end a sentence: a name or a word follows.
_TITLES = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "e.g", "i.e", "cf"}
    | {"no", "fig", "approx", "dept", "est", "inc", "ltd", "co"}
)
# Abbreviations that end a sentence when a capital follows ("... and so on, etc. Then").
_SOFT = frozenset(("etc", "al"))
_FENCE = "```"
_CLAUSE_AFTER = 160  # characters: past this, a clause boundary is taken too
_CLAUSE_MARKS = ",;:"

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.M)
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+", re.M)
_QUOTE_MARK = re.compile(r"^\s*>\s?", re.M)
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_INLINE_CODE = re.compile(r"`+([^`]*)`+")
_EMPHASIS = re.compile(r"(?<![\w*_~])[*_~]+|[*_~]+(?![\w*_~])")
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-{2,}:?\s*\|)+\s*:?-*:?\s*\|?\s*$", re.M)
_RULE = re.compile(r"^\s*([-*_])(?:\s*\1){2,}\s*$", re.M)
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Sentence:
    text: str  # verbatim part of the answer
    spoken: str  # what is read aloud; "" for text that says nothing


def speakable(text: str) -> str:
    """The words of a piece of Markdown, without its symbols; "" if none."""
    if text.lstrip().startswith(_FENCE):
        return ""
    out = _TABLE_RULE.sub("", text)
    out = _RULE.sub("", out)
    out = _HEADING.sub("", out)
    out = _QUOTE_MARK.sub("", out)
    out = _LIST_MARK.sub("", out)
    out = _IMAGE_OR_LINK.sub(r"\1", out)
    out = _INLINE_CODE.sub(r"\1", out)
    out = _TAG.sub("", out)
    out = _EMPHASIS.sub("", out)
    if "|" in out:  # a table's row: its cells, as a list
        out = ", ".join(cell.strip() for cell in out.split("|") if cell.strip())
    out = _SPACES.sub(" ", out).strip()
    return out if _WORD.search(out) else ""


class SentenceSplitter:
    """Feed it the answer's tokens; it returns each sentence once it is complete."""

    def __init__(self) -> None:
        self._buffer = ""
        self._carry = ""  # text that says nothing, waiting for the next sentence
        self._line_start = True  # the buffer begins a line

    def feed(self, token: str) -> list[Sentence]:
        self._buffer += token
        return self._drain(final=False)

    def finish(self) -> list[Sentence]:
        """The rest, at the end of the answer."""
        out = self._drain(final=True)
        if self._carry:
            out.append(Sentence(self._carry, ""))
            self._carry = ""
        return out

    def _drain(self, *, final: bool) -> list[Sentence]:
        out: list[Sentence] = []
        while self._buffer:
            end = self._boundary(final)
            if end is None:
                break
            piece, self._buffer = self._buffer[:end], self._buffer[end:]
            self._line_start = piece.endswith("\n")
            spoken = speakable(piece)
            if spoken:
                out.append(Sentence(self._carry + piece, spoken))
                self._carry = ""
            else:
                self._carry += piece
        return out

    def _boundary(self, final: bool) -> int | None:
        """Where the first sentence of the buffer ends; None until that is known."""
        text = self._buffer
        if self._line_start:
            head = text.lstrip(" ")
            if head.startswith(_FENCE):
                return self._fence_end(text, final)
            if _FENCE.startswith(head) and not final:
                return None  # "`" or "``": maybe a fence
        for i, ch in enumerate(text):
            if ch == "\n":
                return i + 1
            if ch in _ENDS:
                end = self._sentence_end(text, i, final)
                if end == -1:
                    continue
                return end
            if ch in _CLAUSE_MARKS and i >= _CLAUSE_AFTER:
                if i + 1 == len(text):
                    return len(text) if final else None
                if text[i + 1] == " ":
                    return i + 1
        return len(text) if final else None

    def _fence_end(self, text: str, final: bool) -> int | None:
        start = text.index(_FENCE)
        close = text.find("\n" + _FENCE, start + len(_FENCE))
        if close == -1:
            return len(text) if final else None
        line_end = text.find("\n", close + 1 + len(_FENCE))
        if line_end == -1:
            return len(text) if final else None
        return line_end + 1

    def _sentence_end(self, text: str, i: int, final: bool) -> int | None:
        """After the punctuation at ``i``: the end, -1 for "not here", None for "not yet"."""
        j = i + 1
        while j < len(text) and (text[j] in _ENDS or text[j] in _CLOSERS):
            j += 1
        if j == len(text):
            return len(text) if final else None
        if not text[j].isspace():
            return -1  # 3.14, e.g., file.txt, "?!" inside a word
        if text[i] != ".":
            return j
        word = _word_before(text, i)
        lowered = word.lower()
        if lowered in _TITLES:
            return -1
        if len(word) == 1 and word.isupper():
            return -1  # an initial: "J. R. Smith"
        if word.isdigit() and self._line_start and text[: i - len(word)].strip() == "":
            return -1  # a numbered list's marker: "1. Buy milk"
        if lowered in _SOFT:
            following = text[j:].lstrip()
            if not following:
                return len(text) if final else None
            if not following[0].isupper():
                return -1
        return j


def _word_before(text: str, i: int) -> str:
    """The word (letters, digits and inner dots) that ends at ``i``."""
    k = i
    while k > 0 and (text[k - 1].isalnum() or (text[k - 1] == "." and k - 1 > 0)):
        if text[k - 1] == "." and not text[k - 2].isalnum():
            break
        k -= 1
    return text[k:i]
