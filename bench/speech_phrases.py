"""The phrases of the recognition benchmark and how a transcript is scored.

Shared by ``bench/speech_accuracy.py`` and the round-trip test, so the
figure in the README and the bar in the test count words the same way.
"""

from __future__ import annotations

import re

__all__ = ["PHRASES", "word_hits"]

PHRASES = (
    "what is the weather like today",
    "set a timer for ten minutes",
    "turn off the lights in the kitchen",
    "what time is it",
    "play some music please",
    "remind me to call my mother tomorrow",
    "how far is the moon from the earth",
    "tell me a joke",
    "what is the capital of france",
    "add milk and bread to my shopping list",
    "good morning how are you",
    "read me the news",
)

_NOT_A_WORD = re.compile(r"[^a-z' ]+")


def _words(text: str) -> list[str]:
    return _NOT_A_WORD.sub(" ", text.lower()).split()


def word_hits(reference: str, heard: str) -> tuple[int, int]:
    """``(words heard right, words said)``: matches in a minimum-edit alignment.

    "what is a limit on a date" for "what is the weather like today" is 2 of 6.
    """
    said, got = _words(reference), _words(heard)
    # cost[i][j]: edits between said[:i] and got[:j]; ties prefer a match.
    cost = [[i + j if i * j == 0 else 0 for j in range(len(got) + 1)] for i in range(len(said) + 1)]
    for i in range(1, len(said) + 1):
        for j in range(1, len(got) + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1,
                cost[i][j - 1] + 1,
                cost[i - 1][j - 1] + (said[i - 1] != got[j - 1]),
            )
    i, j, hits = len(said), len(got), 0
    while i and j:
        if cost[i][j] == cost[i - 1][j - 1] + (said[i - 1] != got[j - 1]):
            hits += said[i - 1] == got[j - 1]
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return hits, len(said)
