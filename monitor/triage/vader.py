"""VADER's scores (vaderSentiment 3.3.2's algorithm) at a fraction of its cost, equal to the last bit.

English sentiment is VADER on the whole text, and vaderSentiment's own `polarity_scores` cost about a
quarter of an English post's triage: it lower-cases every word again in each of its checks (each
lexicon word rebuilds the lower-cased list of the whole text twice or more), and copies the text
character by character to replace emoji. Here the words are lower-cased once, a text without a VADER
word is decided by one set look-up, and emoji are replaced only in a text that has one. The lexicon,
emoji descriptions and constants are the installed package's, read when the tables are built; every
rule is applied in vaderSentiment's order with its arithmetic, so the scores are identical
(tests/test_vader_same.py compares them with the package's on tens of thousands of texts).
"""

from __future__ import annotations

import math
import string
from typing import Any

_ALPHA = 15.0  # vaderSentiment's `normalize` alpha
_BEFORE_BUT, _AFTER_BUT = 0.5, 1.5
_MARK = "\x00"  # where an emoji was, in a text that has no NUL of its own


class Vader:
    """The package's lexicon, emoji descriptions and constants, and its scoring rules over them."""

    def __init__(self) -> None:
        from vaderSentiment import vaderSentiment as package

        analyzer = package.SentimentIntensityAnalyzer()
        # Only the dicts are kept: the analyzer also holds both files' text (~0.4 MB).
        self.lexicon: dict[str, float] = analyzer.lexicon
        # The package replaces emoji one character at a time: a longer key never matches.
        self.emojis: dict[str, str] = {key: text for key, text in analyzer.emojis.items() if len(key) == 1}
        self._emoji_set = frozenset(self.emojis)
        self.boosters: dict[str, float] = package.BOOSTER_DICT
        self.idioms: dict[str, float] = package.SPECIAL_CASES
        self.negations = frozenset(package.NEGATE)
        self.negation_scalar: float = package.N_SCALAR
        self.caps_increment: float = package.C_INCR

    def polarity_scores(self, text: str) -> dict[str, float]:
        """vaderSentiment's `polarity_scores`: neg, neu, pos (3 places) and compound (4)."""
        valences, text = self._valences(text)
        if not valences:
            return {"neg": 0.0, "neu": 0.0, "pos": 0.0, "compound": 0.0}
        amplifier = _punctuation_emphasis(text)
        pos_sum = neg_sum = 0.0
        neu_count = 0
        for valence in valences:
            if valence > 0:
                pos_sum += float(valence) + 1
            if valence < 0:
                neg_sum += float(valence) - 1
            if valence == 0:
                neu_count += 1
        if pos_sum > math.fabs(neg_sum):
            pos_sum += amplifier
        elif pos_sum < math.fabs(neg_sum):
            neg_sum -= amplifier
        total = pos_sum + math.fabs(neg_sum) + neu_count
        return {
            "neg": round(math.fabs(neg_sum / total), 3),
            "neu": round(math.fabs(neu_count / total), 3),
            "pos": round(math.fabs(pos_sum / total), 3),
            "compound": round(_compound(valences, amplifier), 4),
        }

    def compound(self, text: str) -> float:
        """`polarity_scores(text)["compound"]`, without the other three."""
        valences, text = self._valences(text)
        if not valences:
            return 0.0
        return round(_compound(valences, _punctuation_emphasis(text)), 4)

    def _valences(self, text: str) -> tuple[list[Any], str]:
        """Each word's valence, as vaderSentiment's `sentiments` list, and the text it scored."""
        if not text.isascii() and (found := self._emoji_set.intersection(text)):
            text = self._describe_emoji(text, found)
        words = [
            word if len(stripped := word.strip(string.punctuation)) <= 2 else stripped
            for word in text.split()
        ]
        lowered = [word.lower() for word in words]
        lexicon = self.lexicon
        if lexicon.keys().isdisjoint(lowered):
            return [0] * len(words), text  # no VADER word: every valence is 0, "but" or not
        count = len(words)
        caps_differ = 0 < count - sum(1 for word in words if word.isupper()) < count
        boosters = self.boosters
        valences: list[Any] = []
        for i, word in enumerate(lowered):
            if (
                word in boosters
                or word not in lexicon
                or (word == "kind" and i < count - 1 and lowered[i + 1] == "of")
            ):
                valences.append(0)
                continue
            valences.append(self._word_valence(i, words, lowered, caps_differ))
        if "but" in lowered:
            _but_check(lowered.index("but"), valences)
        return valences, text

    def _describe_emoji(self, text: str, found: frozenset[str]) -> str:
        """Each emoji replaced by its description, a space before it unless the text starts there or
        a space is there already (vaderSentiment's character loop, done by `str.replace`)."""
        if _MARK in text:
            return self._describe_emoji_by_character(text)
        marked = text
        for emoji in found:  # each emoji: the mark, then its description (which never starts with a space)
            marked = marked.replace(emoji, _MARK + self.emojis[emoji])
        marked = marked.replace(" " + _MARK, " ")
        if marked.startswith(_MARK):
            marked = marked[1:]
        return marked.replace(_MARK, " ").strip()

    def _describe_emoji_by_character(self, text: str) -> str:
        parts: list[str] = []
        after_space = True
        for character in text:
            description = self.emojis.get(character)
            if description is None:
                parts.append(character)
                after_space = character == " "
            else:
                if not after_space:
                    parts.append(" ")
                parts.append(description)
                after_space = False
        return "".join(parts).strip()

    def _word_valence(self, i: int, words: list[str], lowered: list[str], caps_differ: bool) -> float:
        """vaderSentiment's `sentiment_valence` for the lexicon word at `i`."""
        lexicon = self.lexicon
        word = lowered[i]
        valence = lexicon[word]
        if word == "no" and i != len(words) - 1 and lowered[i + 1] in lexicon:
            valence = 0.0  # "no" negates the next word rather than counting itself
        if (
            (i > 0 and lowered[i - 1] == "no")
            or (i > 1 and lowered[i - 2] == "no")
            or (i > 2 and lowered[i - 3] == "no" and lowered[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[word] * self.negation_scalar
        if caps_differ and words[i].isupper():
            valence = valence + self.caps_increment if valence > 0 else valence - self.caps_increment
        for back in range(3):
            if i > back and lowered[i - back - 1] not in lexicon:
                scalar = self._booster_scalar(
                    words[i - back - 1], lowered[i - back - 1], valence, caps_differ
                )
                if back == 1 and scalar != 0:
                    scalar = scalar * 0.95
                if back == 2 and scalar != 0:
                    scalar = scalar * 0.9
                valence = valence + scalar
                valence = self._negation_check(valence, lowered, back, i)
                if back == 2:
                    valence = self._idioms_check(valence, lowered, i)
        return self._least_check(valence, lowered, i)

    def _booster_scalar(self, word: str, lower: str, valence: float, caps_differ: bool) -> float:
        """vaderSentiment's `scalar_inc_dec`: what a booster or dampener before the word adds."""
        scalar = 0.0
        if lower in self.boosters:
            scalar = self.boosters[lower]
            if valence < 0:
                scalar *= -1
            if word.isupper() and caps_differ:
                if valence > 0:
                    scalar += self.caps_increment
                else:
                    scalar -= self.caps_increment
        return scalar

    def _negated(self, lower: str) -> bool:
        return lower in self.negations or "n't" in lower

    def _negation_check(self, valence: float, lowered: list[str], back: int, i: int) -> float:
        if back == 0:
            if self._negated(lowered[i - 1]):
                valence = valence * self.negation_scalar
        elif back == 1:
            if lowered[i - 2] == "never" and (lowered[i - 1] == "so" or lowered[i - 1] == "this"):
                valence = valence * 1.25
            elif lowered[i - 2] == "without" and lowered[i - 1] == "doubt":
                pass
            elif self._negated(lowered[i - 2]):
                valence = valence * self.negation_scalar
        else:
            # The package's precedence: (never and (so or this)) or (so or this right before).
            if (lowered[i - 3] == "never" and (lowered[i - 2] == "so" or lowered[i - 2] == "this")) or (
                lowered[i - 1] == "so" or lowered[i - 1] == "this"
            ):
                valence = valence * 1.25
            elif lowered[i - 3] == "without" and (lowered[i - 2] == "doubt" or lowered[i - 1] == "doubt"):
                pass
            elif self._negated(lowered[i - 3]):
                valence = valence * self.negation_scalar
        return valence

    def _idioms_check(self, valence: float, lowered: list[str], i: int) -> float:
        """vaderSentiment's `_special_idioms_check` (called with i > 2)."""
        idioms = self.idioms
        one_zero = f"{lowered[i - 1]} {lowered[i]}"
        two_one_zero = f"{lowered[i - 2]} {one_zero}"
        two_one = f"{lowered[i - 2]} {lowered[i - 1]}"
        three_two_one = f"{lowered[i - 3]} {two_one}"
        three_two = f"{lowered[i - 3]} {lowered[i - 2]}"
        for sequence in (one_zero, two_one_zero, two_one, three_two_one, three_two):
            if sequence in idioms:
                valence = idioms[sequence]
                break
        if len(lowered) - 1 > i:
            zero_one = f"{lowered[i]} {lowered[i + 1]}"
            if zero_one in idioms:
                valence = idioms[zero_one]
        if len(lowered) - 1 > i + 1:
            zero_one_two = f"{lowered[i]} {lowered[i + 1]} {lowered[i + 2]}"
            if zero_one_two in idioms:
                valence = idioms[zero_one_two]
        for n_gram in (three_two_one, three_two, two_one):
            if n_gram in self.boosters:
                valence = valence + self.boosters[n_gram]
        return valence

    def _least_check(self, valence: float, lowered: list[str], i: int) -> float:
        # "least" is not in the lexicon, so the package's "not in lexicon" test adds nothing here.
        if i > 1 and lowered[i - 1] == "least":
            if lowered[i - 2] != "at" and lowered[i - 2] != "very":
                valence = valence * self.negation_scalar
        elif i > 0 and lowered[i - 1] == "least":
            valence = valence * self.negation_scalar
        return valence


def _but_check(but: int, valences: list[Any]) -> None:
    """vaderSentiment's `_but_check`, in place: it finds each valence by `list.index` (its first equal
    value in the list as modified so far) and scales that one, which this keeps."""
    for valence in list(valences):
        index = valences.index(valence)
        if index < but:
            valences[index] = valence * _BEFORE_BUT
        elif index > but:
            valences[index] = valence * _AFTER_BUT


def _punctuation_emphasis(text: str) -> float:
    exclamations = min(text.count("!"), 4)
    questions = text.count("?")
    question_amplifier: float = 0
    if questions > 1:
        question_amplifier = questions * 0.18 if questions <= 3 else 0.96
    return exclamations * 0.292 + question_amplifier


def _compound(valences: list[Any], amplifier: float) -> float:
    total = float(sum(valences))
    if total > 0:
        total += amplifier
    elif total < 0:
        total -= amplifier
    score = total / math.sqrt(total * total + _ALPHA)
    return max(-1.0, min(1.0, score))
