"""Negation and "but" scope for the learned negative model's words: "gak jelek kok" reads "gak ¬- kok".

The n-gram model cannot know that "not bad" is not "bad", nor that "nice, but too dear" is about
the price; the lexicon scorer (triage.sentiment) reads both by rule. Here the words are rewritten
before the negative model's n-grams read them, so it learns the same from labelled posts:
- a word a negator reaches (the lexicon's reach: the next three words after a word of the
  language's negators.txt, up to the first sentiment word, never past a comma, a sentence's end,
  a "but" word or another negator) is marked: "¬stiglo" has n-grams of its own; a lexicon word
  there becomes its side, NEGATED_NEGATIVE or NEGATED_POSITIVE ("¬-", "¬+"), one feature learnt from
  every negated word of that side (each is rare alone);
- a lexicon word before a "but" word in its sentence becomes BEFORE_BUT_NEGATIVE or
  BEFORE_BUT_POSITIVE ("<-", "<+"), as the lexicon halves it.
Only the space-separated lexicon languages (da, hr, ro, id) are rewritten; Chinese n-grams read
whole clauses, where 不差 is already a character pair of its own.
"""

from __future__ import annotations

import re
from functools import cache

from monitor.triage.lexicon import fold, lexicon

NEGATED = "¬"  # never part of a \w word: a marked word cannot collide with a plain one
NEGATED_NEGATIVE, NEGATED_POSITIVE = NEGATED + "-", NEGATED + "+"
BEFORE_BUT_NEGATIVE, BEFORE_BUT_POSITIVE = "<-", "<+"
SIDE_WORDS = frozenset({NEGATED_NEGATIVE, NEGATED_POSITIVE, BEFORE_BUT_NEGATIVE, BEFORE_BUT_POSITIVE})
SPACED_LANGUAGES = frozenset({"da", "hr", "ro", "id"})  # the lexicon languages written with spaces: rewritten
_WINDOW = 3  # as the lexicon's negation window
_BREAK = re.compile(r"[,;:.!?]")
_TOKEN = re.compile(r"\w+|[,;:.!?]")  # its words are exactly the \w+ words the n-gram models read
_SENTENCE_END = frozenset(".!?")


@cache
def _scope(lang: str) -> tuple[frozenset[str], frozenset[str], dict[str, float]]:
    """(negators, "but" words, sentiment word -> value, folded as the n-gram models read words)."""
    lex = lexicon(lang)
    values = {fold(word): value for word, value in lex.words.items()} | lex.words
    return lex.negators, lex.contrasts, values


def warm_up() -> None:
    """Build each rewritten language's scope now, at start-up (triage.warm_up): built by the language's
    first post, it was made in the middle of a burst, and a table that lives for the process's life among
    a burst's short-lived objects keeps the heap the burst grew (bench/memory.py)."""
    for lang in sorted(SPACED_LANGUAGES):
        _scope(lang)


def scoped_words(folded: str, words: list[str], *, lang: str) -> list[str]:
    """`words` (the \\w+ words of the folded text `folded`) rewritten as the module says; the same
    list when there is nothing to rewrite (most posts)."""
    return _rewritten(folded, words, lang=lang) if lang in SPACED_LANGUAGES else words


def _rewritten(folded: str, words: list[str], *, lang: str) -> list[str]:
    negators, contrasts, values = _scope(lang)
    has_but = not contrasts.isdisjoint(words)
    if negators.isdisjoint(words) and not has_but:
        return words
    tokens = _TOKEN.findall(folded) if _BREAK.search(folded) else words
    marked: list[str] = []
    sentence_start = 0  # where the current sentence's words begin in `marked`
    reach = 0
    for token in tokens:
        if len(token) == 1 and _BREAK.match(token):
            reach = 0
            if token in _SENTENCE_END:
                sentence_start = len(marked)
            continue
        if token in negators:
            reach = _WINDOW
        elif token in contrasts:
            reach = 0
            _halve_before(marked, sentence_start, values)
        elif reach:
            value = values.get(token)
            if value:
                reach = 0
                token = NEGATED_NEGATIVE if value < 0 else NEGATED_POSITIVE
            else:
                reach -= 1
                token = NEGATED + token
        marked.append(token)
    return marked


def _halve_before(marked: list[str], start: int, values: dict[str, float]) -> None:
    """Turn the plain lexicon words of `marked[start:]` (the sentence so far) into their side before a "but"."""
    for index in range(start, len(marked)):
        value = values.get(marked[index])
        if value:
            marked[index] = BEFORE_BUT_NEGATIVE if value < 0 else BEFORE_BUT_POSITIVE


_WORDS = re.compile(r"\w+")


def negates_a_negative_word(folded: str, words: list[str] | None = None, *, lang: str) -> bool:
    """Whether a negator in the folded text reaches a negative lexicon word ("gak jelek", "nije loše")."""
    if lang not in SPACED_LANGUAGES:
        return False
    return NEGATED_NEGATIVE in _rewritten(folded, _WORDS.findall(folded) if words is None else words, lang=lang)
