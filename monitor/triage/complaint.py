"""Complaint probability and categories: per-language cue patterns + small linear models.

Three kinds of evidence are blended by a logistic "stacker" whose coefficients are
learnt from public labelled corpora (scripts/train_complaint.py, data/DATA.md); the
stacker is fitted on a calibration split, so its output is a calibrated probability:
- cue patterns per language (monitor/data/lexicons/<lang>/complaint_cues.tsv), which
  also name the categories;
- a linear model over character n-grams (monitor/data/models/complaint.json), which
  catches wording the cues miss;
- document sentiment.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from monitor.triage.lexicon import Cue, clean, cues, fold

MODEL_PATH = Path(__file__).parent.parent / "data" / "models" / "complaint.json"
CATEGORIES: tuple[str, ...] = (
    "delivery",
    "wrong_item",
    "damaged",
    "refund",
    "billing",
    "account",
    "no_response",
    "cancellation",
    "churn_threat",
    "question",
)
_CUE_CAP = 5.0  # many weak cues must not outweigh everything else
_WORD = re.compile(r"\w+")
# Used when no trained model file is present: cues and sentiment only, hand-set.
_DEFAULT_STACK = {"bias": -2.0, "model": 0.0, "cues": 1.6, "negative": 2.0, "positive": -1.5}


def folded_body(text: str, *, cleaned: str | None = None) -> str:
    """The form cues and features read: cleaned of URLs/handles, lower-cased, diacritic-free."""
    return fold(clean(text) if cleaned is None else cleaned)


@lru_cache(maxsize=1 << 13)  # the common words; at 65,536 it grew 6 MB in 2,500 posts (tracemalloc)
def _word_grams(word: str) -> tuple[str, ...]:
    """Character 2-4-grams of one space-padded word (cached: words repeat across posts)."""
    padded = f" {word} "
    size = len(padded)
    return tuple(padded[i : i + n] for n in (2, 3, 4) for i in range(size - n + 1))


def feature_counts(text: str, *, folded: str | None = None) -> Counter[str]:
    """Counted features: character 2-4-grams inside space-padded words, and word bigrams.

    The model sees counts / sqrt(total count); keeping repeats (rather than a set) lets
    inference add up cached per-word sums instead of building a set for every post.
    """
    words = _WORD.findall(folded_body(text) if folded is None else folded)
    counts: Counter[str] = Counter()
    for word in words:
        counts.update(_word_grams(word))
    counts.update(f"w:{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return counts


@dataclass(frozen=True, slots=True)
class CueHits:
    total: float
    categories: tuple[str, ...]
    signals: tuple[str, ...]


def cue_hits(text: str, *, lang: str, folded: str | None = None) -> CueHits:
    """Which of the language's cue patterns match, their capped total weight, and categories."""
    folded = folded_body(text) if folded is None else folded
    total = 0.0
    found: dict[str, float] = {}
    signals = []
    # A cue is only tried where one of its literal prefixes occurs (at a word start for
    # \b-patterns, anywhere otherwise): `search` from the first such place finds the same
    # match as a search from the start, since every match begins at one of them.
    all_cues, always, by_word_start, by_substring = _cue_index(lang)
    first: dict[int, int] = {}  # cue -> earliest place it can match
    for word in _WORD.finditer(folded):
        token = word.group()
        for prefix in (token[:1], token[:2], token[:3]):
            hit = by_word_start.get(prefix)
            if hit:
                position = word.start()
                for index in hit:
                    if index not in first:
                        first[index] = position
    for prefix, indices in by_substring.items():
        position = folded.find(prefix)
        if position >= 0:
            for index in indices:
                if first.get(index, position) >= position:
                    first[index] = position
    for index in sorted(first.keys() | always) if always else sorted(first):
        cue = all_cues[index]
        match = cue.pattern.search(folded, first.get(index, 0))
        if match is None:
            continue
        total += cue.weight
        phrase = match.group(0).strip()
        if cue.category:
            if found.get(cue.category, 0.0) < cue.weight:
                found[cue.category] = cue.weight
            signals.append(f"category {cue.category}: '{phrase}'")
        else:
            signals.append(f"grievance: '{phrase}'")
    ordered = tuple(c for c in CATEGORIES if c in found)
    return CueHits(total=min(total, _CUE_CAP), categories=ordered, signals=tuple(dict.fromkeys(signals)))


@cache
def _cue_index(
    lang: str,
) -> tuple[tuple[Cue, ...], tuple[int, ...], dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """The language's cues, and which of them a literal prefix (at a word start, or anywhere) can start."""
    all_cues = cues(lang)
    always: list[int] = []
    by_word_start: dict[str, list[int]] = {}
    by_substring: dict[str, list[int]] = {}
    for index, cue in enumerate(all_cues):
        if cue.prefixes is None:
            always.append(index)
            continue
        table = by_word_start if cue.word_start else by_substring
        for prefix in cue.prefixes:
            table.setdefault(prefix, []).append(index)
    return (all_cues, tuple(always), {k: tuple(v) for k, v in by_word_start.items()},
            {k: tuple(v) for k, v in by_substring.items()})


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Logistic regression over `feature_counts`, scaled by 1/sqrt(total count) as in training."""

    intercept: float
    weights: dict[str, float]
    _word_cache: dict[str, tuple[float, int]] = field(default_factory=dict, compare=False, repr=False)

    def _word(self, word: str) -> tuple[float, int]:
        cached = self._word_cache.get(word)
        if cached is None:
            grams = _word_grams(word)
            cached = (sum(self.weights.get(g, 0.0) for g in grams), len(grams))
            if len(self._word_cache) > 200_000:  # bound memory on endless novel words
                self._word_cache.clear()
            self._word_cache[word] = cached
        return cached

    def logit(self, folded: str) -> float:
        words = _WORD.findall(folded)
        total, count = 0.0, 0
        for word in words:
            partial, n = self._word(word)
            total += partial
            count += n
        weights = self.weights
        for first, second in zip(words, words[1:], strict=False):
            total += weights.get(f"w:{first} {second}", 0.0)
            count += 1
        return self.intercept + total / math.sqrt(count) if count else self.intercept

    def to_json(self) -> dict[str, Any]:
        return {"intercept": self.intercept, "weights": self.weights}


    def contributions(self, folded: str) -> dict[str, float]:
        """Each word's share of `logit` (the sum of its n-gram weights), and each word pair's.

        Grouped by word rather than by n-gram so `explain` reuses the per-word sums that
        `logit` already cached, and a reader sees words, not fragments like 'ed'."""
        words = _WORD.findall(folded)
        parts = [(w, *self._word(w)) for w in words]
        pairs = [(f"{a} {b}", self.weights.get(f"w:{a} {b}", 0.0)) for a, b in zip(words, words[1:], strict=False)]
        count = sum(n for _, _, n in parts) + len(pairs)
        if not count:
            return {}
        scale = 1.0 / math.sqrt(count)
        out: dict[str, float] = {}
        for word, partial, _ in parts:
            out[word] = out.get(word, 0.0) + partial * scale
        for pair, weight in pairs:
            if weight:
                out[pair] = out.get(pair, 0.0) + weight * scale
        return out


@dataclass(frozen=True, slots=True)
class NegativeModel:
    """How negative a post is by its wording, learnt from labelled posts (scripts/train_complaint.py).

    Its Platt-scaled probability p gives a post without lexicon words the sentiment weight x (1 - 2p)."""

    ngrams: LinearModel
    slope: float
    offset: float
    weight: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NegativeModel:
        ngrams = LinearModel(intercept=float(data["ngrams"]["intercept"]), weights=data["ngrams"]["weights"])
        slope, offset = (float(v) for v in data["platt"])
        return cls(ngrams=ngrams, slope=slope, offset=offset, weight=float(data["weight"]))

    def correction(self, folded: str) -> float:
        z = self.slope * self.ngrams.logit(folded) + self.offset
        p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
        return self.weight * (1.0 - 2.0 * p)


@dataclass(frozen=True, slots=True)
class ComplaintModel:
    ngrams: LinearModel | None
    stack: dict[str, float]
    negative: NegativeModel | None = None

    def probability(
        self, *, text: str, cue_total: float, sentiment: float | None, folded: str | None = None
    ) -> tuple[float, float]:
        """(complaint probability, the n-gram model's own logit)."""
        if self.ngrams is None:
            model_logit = 0.0
        else:
            model_logit = self.ngrams.logit(folded_body(text) if folded is None else folded)
        s = self.stack
        z = (
            s["bias"]
            + s["model"] * model_logit
            + s["cues"] * cue_total
            + s["negative"] * max(0.0, -(sentiment or 0.0))
            + s["positive"] * max(0.0, sentiment or 0.0)
        )
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), model_logit


    def explain(
        self, *, model_logit: float, cue_total: float, sentiment: float | None, folded: str, top: int = 5
    ) -> list[str]:
        """What drove the complaint score: the stacker's terms, then the n-gram features that weigh most."""
        s = self.stack
        negative, positive = max(0.0, -(sentiment or 0.0)), max(0.0, sentiment or 0.0)
        terms = {
            "n-gram model": s["model"] * model_logit,
            "cues": s["cues"] * cue_total,
            "negative sentiment": s["negative"] * negative,
            "positive sentiment": s["positive"] * positive,
        }
        shown = ", ".join(f"{name} {value:+.2f}" for name, value in terms.items() if abs(value) >= 0.005)
        out = [f"complaint logit {s['bias']:+.2f} (bias){', ' + shown if shown else ''}"]
        if self.ngrams is not None and abs(model_logit) >= 0.25:
            parts = self.ngrams.contributions(folded)
            strongest = sorted(parts.items(), key=lambda kv: -abs(kv[1]))[:top]
            out.append("n-gram features: " + ", ".join(f"'{name}' {value:+.2f}" for name, value in strongest))
        return out


@cache
def load_model(path: Path = MODEL_PATH) -> ComplaintModel:
    """The shipped model, read once; cues-and-sentiment only if the file is absent."""
    if not path.exists():
        return ComplaintModel(ngrams=None, stack=dict(_DEFAULT_STACK))
    data = json.loads(path.read_text(encoding="utf-8"))
    ngrams = LinearModel(intercept=float(data["ngrams"]["intercept"]), weights=data["ngrams"]["weights"])
    negative = NegativeModel.from_json(data["negative"]) if "negative" in data else None
    return ComplaintModel(
        ngrams=ngrams, stack={k: float(v) for k, v in data["stack"].items()}, negative=negative
    )


def stack_inputs(*, model_logit: float, cue_total: float, sentiment: float | None) -> list[float]:
    """The stacker's inputs, in the order scripts/train_complaint.py fits them."""
    s = sentiment or 0.0
    return [model_logit, cue_total, max(0.0, -s), max(0.0, s)]
