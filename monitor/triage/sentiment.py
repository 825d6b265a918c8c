"""Sentence-level sentiment in six languages, combined into one document score.

English uses VADER one sentence at a time (so "never" in one sentence cannot flip
the next); the other languages use our lexicons (Danish on top of afinn's list).
Emoji are scored from our own table, not by VADER (which gives 😡 zero).
"""

from __future__ import annotations

import math
import re
from functools import cache

from monitor.triage.lexicon import (
    Lexicon,
    clean,
    emoji_pattern,
    emoji_valence,
    fold,
    lexicon,
    split_sentences,
)

SCORED_LANGUAGES = frozenset({"en", "da", "hr", "ro", "id", "zh"})

_NEUTRAL = 0.05  # |score| below this is neutral, as in VADER's convention
_NEGATION_SCALAR = -0.74  # VADER's factor for a negated word
_INTENSIFIER_SCALAR = 1.3
_NEGATIVE_WEIGHT = 1.5  # a negative part counts more: a missed angry customer costs more than a missed fan
_NEGATION_WINDOW = 3
_TOKEN = re.compile(r"\w+|[,;:]")  # clause punctuation is kept: negation stops there
_CLAUSE_BREAK = ","
_ID_REDUPLICATION = re.compile(r"^([a-z]+)2$")  # "nyampe2" = "nyampe-nyampe"


@cache
def _vader():  # type: ignore[no-untyped-def]
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _normalize(raw: float) -> float:
    """VADER's squashing of a summed valence into -1..1."""
    return raw / math.sqrt(raw * raw + 15.0) if raw else 0.0


def _emphasis(sentence: str) -> float:
    bangs = len(sentence) - len(sentence.rstrip("!！"))
    return 1.0 + 0.1 * min(bangs, 3)


def _tokens(sentence: str, lang: str) -> list[str]:
    tokens = [_CLAUSE_BREAK if t in ",;:" else t for t in _TOKEN.findall(fold(sentence))]
    if lang == "id":
        tokens = [m.group(1) if (m := _ID_REDUPLICATION.match(t)) else t for t in tokens]
    return tokens


def _score_words(tokens: list[str], lex: Lexicon) -> float:
    raw = 0.0
    i = 0
    while i < len(tokens):
        value, width = 0.0, 1
        for n in range(min(lex.max_phrase, len(tokens) - i), 1, -1):
            phrase = tuple(tokens[i : i + n])
            if phrase in lex.phrases:
                value, width = lex.phrases[phrase], n
                break
        else:
            value = lex.words.get(tokens[i], 0.0)
        if value:
            before = tokens[max(0, i - _NEGATION_WINDOW) : i]
            if _CLAUSE_BREAK in before:  # "nije stiglo ništa, koji cirkus": "ništa" does not negate "cirkus"
                before = before[len(before) - before[::-1].index(_CLAUSE_BREAK) :]
            if any(t in lex.negators for t in before):
                value *= _NEGATION_SCALAR
            neighbours = tokens[i - 1 : i] + tokens[i + width : i + width + 1]
            if any(t in lex.intensifiers for t in neighbours):
                value *= _INTENSIFIER_SCALAR
            raw += value
        i += width
    return raw


@cache
def _zh_pattern() -> re.Pattern[str]:
    words = sorted(lexicon("zh").words, key=len, reverse=True)
    return re.compile("|".join(re.escape(w) for w in words))


def _score_zh(sentence: str) -> float:
    lex = lexicon("zh")
    folded = fold(sentence)
    matches = list(_zh_pattern().finditer(folded))
    raw, previous_end, boost = 0.0, 0, 1.0
    for k, match in enumerate(matches):
        word = match.group(0)
        gap = folded[max(previous_end, match.start() - _NEGATION_WINDOW) : match.start()]
        previous_end = match.end()
        following = matches[k + 1] if k + 1 < len(matches) else None
        # 好/太/超 right before another word intensify it ("好累" is "so tired", not "good").
        if word in lex.intensifiers and following is not None and following.start() == match.end():
            boost = _INTENSIFIER_SCALAR
            continue
        value = lex.words.get(word, 0.0) * boost
        boost = 1.0
        if not value:
            continue
        if any(neg in gap for neg in lex.negators):
            value *= _NEGATION_SCALAR
        if any(ch in lex.intensifiers for ch in gap):
            value *= _INTENSIFIER_SCALAR
        raw += value
    return raw


_EN_WORD = re.compile(r"[\w']+|[^\w\s]{2,}")


def _vader_sentence(sentence: str) -> float:
    analyzer = _vader()
    # VADER costs ~40 us a sentence; one with no word in its lexicon always scores 0.
    lexicon_words = analyzer.lexicon
    if not any(token in lexicon_words for token in _EN_WORD.findall(sentence.lower())):
        return 0.0
    return float(analyzer.polarity_scores(sentence)["compound"])


def _sentence_score(sentence: str, lang: str) -> float:
    if lang == "en":
        return _vader_sentence(sentence)
    raw = _score_zh(sentence) if lang == "zh" else _score_words(_tokens(sentence, lang), lexicon(lang))
    return _normalize(raw * _emphasis(sentence))


def _quote(sentence: str) -> str:
    return sentence if len(sentence) <= 40 else sentence[:37] + "..."


def sentiment(text: str, *, lang: str, cleaned: str | None = None) -> tuple[float | None, list[str]]:
    """Document sentiment -1..1 (None when `lang` has no scorer) and the reasons."""
    if lang not in SCORED_LANGUAGES:
        return None, [f"sentiment unknown: no scorer for language {lang}"]
    body = clean(text) if cleaned is None else cleaned
    valences = emoji_valence()
    parts: list[float] = []
    signals: list[str] = []
    for symbol in emoji_pattern().findall(body):
        parts.append(valences[symbol])
        signals.append(f"emoji {symbol} {valences[symbol]:+.1f}")
    body = emoji_pattern().sub(" ", body)
    for index, sentence in enumerate(split_sentences(body), start=1):
        score = _sentence_score(sentence, lang)
        if abs(score) >= _NEUTRAL:
            parts.append(score)
            signals.append(f"sentence {index} '{_quote(sentence)}' {score:+.2f}")
    scored = [p for p in parts if abs(p) >= _NEUTRAL]
    if not scored:
        return 0.0, signals
    weights = [_NEGATIVE_WEIGHT if p < 0 else 1.0 for p in scored]
    document = sum(p * w for p, w in zip(scored, weights, strict=True)) / sum(weights)
    return round(max(-1.0, min(1.0, document)), 4), signals
