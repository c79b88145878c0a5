"""What the model is asked: the personality, then as much history as the budget holds."""

from __future__ import annotations

from collections.abc import Sequence

from ..models import Settings, Turn
from ..ports import ChatRequest, ChatTurn
from ..text import clean_title
from .conversations import DEFAULT_TITLE

__all__ = ["HISTORY_ROWS", "build_prompt", "title_from"]

HISTORY_ROWS = 200  # most recent messages considered for the prompt
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


def build_prompt(
    settings: Settings, history: Sequence[Turn], history_tokens: int, max_tokens: int | None
) -> ChatRequest:
    """The request for the model: personality, then history within ``history_tokens``."""
    budget = history_tokens - _estimate_tokens(settings.assistant_personality)
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
    return ChatRequest(model=settings.selected_model, messages=turns, max_tokens=max_tokens)
