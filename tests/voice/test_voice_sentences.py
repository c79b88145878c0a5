"""The sentence splitter on a table of tricky answers.

Each case is checked three ways: fed whole, fed a character at a time, and
fed in uneven tokens, which must all give the same sentences (a boundary is
never decided before the text after it is known); and the sentences' texts
always concatenate to the answer.
"""

from __future__ import annotations

import random

import pytest

from pichat_trio.services.voice.sentences import Sentence, SentenceSplitter, speakable

# (answer, what is read aloud for each sentence, in order)
CASES: list[tuple[str, list[str]]] = [
    ("Hello there. How are you?", ["Hello there.", "How are you?"]),
    ("Wait! Really?! Yes.", ["Wait!", "Really?!", "Yes."]),
    ("Pi is about 3.14159 and e is 2.718.", ["Pi is about 3.14159 and e is 2.718."]),
    ("It costs $4.50. Cheap.", ["It costs $4.50.", "Cheap."]),
    ("It was in 1999. Then it ended.", ["It was in 1999.", "Then it ended."]),
    ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
    (
        "Use fruit, e.g. apples, i.e. red ones. Fine.",
        ["Use fruit, e.g. apples, i.e. red ones.", "Fine."],
    ),
    ("Bring pens, paper, etc. and a bag. Go.", ["Bring pens, paper, etc. and a bag.", "Go."]),
    ("We saw cats, dogs, etc. Then we left.", ["We saw cats, dogs, etc.", "Then we left."]),
    ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
    ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
    ("(This is an aside.) Next.", ["(This is an aside.)", "Next."]),
    ("Wait... what? No.", ["Wait...", "what?", "No."]),
    ("Open config.yaml now. Done.", ["Open config.yaml now.", "Done."]),
    ("Steps:\n1. Buy milk.\n2. Boil it.\n3. Drink.", ["Steps:", "Buy milk.", "Boil it.", "Drink."]),
    ("- apples\n- pears\n* plums", ["apples", "pears", "plums"]),
    ("# Title\nSome **bold** and *italic* text.", ["Title", "Some bold and italic text."]),
    (
        "Run `pip install x` first. Then go.",
        ["Run pip install x first.", "Then go."],
    ),
    ("See [the docs](https://example.com/a.b). Ok.", ["See the docs.", "Ok."]),
    (
        "Here:\n```python\nx = 1.5\nprint(x)\n```\nThat prints 1.5.",
        ["Here:", "That prints 1.5."],
    ),
    ("Code at the end:\n```\na.b()\n```", ["Code at the end:"]),
    ("| a | b |\n|---|---|\n| 1 | 2 |\n", ["a, b", "1, 2"]),
    ("Line one\n\nLine two", ["Line one", "Line two"]),
    ("---\nAfter a rule.", ["After a rule."]),
    ("snake_case_name is fine.", ["snake_case_name is fine."]),
    ("No end punctuation", ["No end punctuation"]),
    ("Version 2.0 is out. Update.", ["Version 2.0 is out.", "Update."]),
    ("A list: 1) one 2) two.", ["A list: 1) one 2) two."]),
]


def _split(tokens: list[str]) -> list[Sentence]:
    splitter = SentenceSplitter()
    out: list[Sentence] = []
    for token in tokens:
        out += splitter.feed(token)
    return out + splitter.finish()


def _uneven(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    tokens, i = [], 0
    while i < len(text):
        n = rng.randint(1, 6)
        tokens.append(text[i : i + n])
        i += n
    return tokens


@pytest.mark.parametrize(("answer", "spoken"), CASES, ids=[c[0][:30] for c in CASES])
def test_sentences(answer: str, spoken: list[str]) -> None:
    whole = _split([answer])
    assert [s.spoken for s in whole if s.spoken] == spoken
    assert "".join(s.text for s in whole) == answer
    assert _split(list(answer)) == whole
    for seed in range(5):
        assert _split(_uneven(answer, seed)) == whole


def test_a_sentence_is_out_as_soon_as_the_next_character_is_known() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("First one.") == []  # "." may yet be "1.5"
    assert [s.spoken for s in splitter.feed(" Sec")] == ["First one."]
    assert splitter.feed("ond") == []
    assert [s.spoken for s in splitter.finish()] == ["Second"]


def test_text_that_says_nothing_goes_with_the_next_sentence() -> None:
    answer = "```\ncode\n```\nAfter the code."
    sentences = _split([answer])
    assert sentences == [Sentence(answer, "After the code.")]


def test_text_that_says_nothing_at_the_end_comes_last_unspoken() -> None:
    sentences = _split(["Done.\n```\nx\n```"])
    assert sentences[-1] == Sentence("\n```\nx\n```", "")


def test_a_long_sentence_is_cut_at_a_clause() -> None:
    clause = "this clause goes on and on without an end in sight"
    answer = ", ".join([clause] * 6) + "."
    sentences = _split([answer])
    assert len(sentences) >= 2
    assert "".join(s.text for s in sentences) == answer
    assert all(len(s.text) < 260 for s in sentences)


def test_an_unclosed_code_block_is_held_until_the_end() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("```\nwhile True:\n    pass.\n") == []
    assert splitter.finish() == [Sentence("```\nwhile True:\n    pass.\n", "")]


@pytest.mark.parametrize(
    ("markdown", "words"),
    [
        ("**Note:** read `this`", "Note: read this"),
        ("![a cat](cat.png)", "a cat"),
        ("<b>bold</b>", "bold"),
        ("> quoted", "quoted"),
        ("***", ""),
        ("```", ""),
        ("~~gone~~ here", "gone here"),
    ],
)
def test_speakable(markdown: str, words: str) -> None:
    assert speakable(markdown) == words
