"""Complaint probability and categories: per-language cue patterns + small linear models.

Three kinds of evidence are blended by a logistic "stacker" whose coefficients are
learnt from public labelled corpora (scripts/train_complaint.py, data/DATA.md); the
stacker is fitted on a calibration split, so its output is a calibrated probability:
- cue patterns per language (monitor/data/lexicons/<lang>/complaint_cues.tsv), which
  also name the categories;
- a linear model over character n-grams, words and word pairs (monitor/data/models/complaint.json), which
  catches wording the cues miss;
- document sentiment.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
import math
import mmap
import operator
import re
import shutil
import subprocess
import sys
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from monitor.process import cache_root, child_env, put_in_place
from monitor.triage.lexicon import WHOLE_WORD, Cue, clean, cues, fold
from monitor.triage.negation import NEGATED, SIDE_WORDS, scoped_words

log = logging.getLogger(__name__)

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


@lru_cache(maxsize=1 << 11)  # novel words only: each model keeps per-word sums (`LinearModel._word_cache`)
def _word_grams(word: str) -> tuple[str, ...]:
    """Character 2-4-grams of one space-padded word (cached: words repeat across posts); those of a
    negated word (`negation.scoped_words`: "¬jelek") are marked too, so none is a plain word's."""
    if word in SIDE_WORDS:  # a negated or halved lexicon word's side: one word feature, no n-grams
        return ()
    if word.startswith(NEGATED):
        return tuple(NEGATED + gram for gram in _word_grams(word[1:]))
    padded = f" {word} "
    size = len(padded)
    return tuple(padded[i : i + n] for n in (2, 3, 4) for i in range(size - n + 1))


def feature_counts(text: str, *, folded: str | None = None, words: list[str] | None = None) -> Counter[str]:
    """Counted features: character 2-4-grams inside space-padded words, words, and word bigrams
    (`words`: the words to read, if not the folded text's, e.g. `negation.scoped_words`).

    The model sees counts / sqrt(total count); keeping repeats (rather than a set) lets
    inference add up cached per-word sums instead of building a set for every post.
    """
    if words is None:
        words = _WORD.findall(folded_body(text) if folded is None else folded)
    counts: Counter[str] = Counter()
    for word in words:
        counts.update(_word_grams(word))
    counts.update(f"w:{word}" for word in words)
    counts.update(f"w:{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return counts


def words_of(folded: str) -> list[str]:
    """The words `feature_counts` and `LinearModel.logit` read (tokenise once, score with both models)."""
    return _WORD.findall(folded)


@dataclass(frozen=True, slots=True)
class CueHits:
    total: float
    categories: tuple[str, ...]
    signals: tuple[str, ...]


def cue_hits(text: str, *, lang: str, folded: str | None = None, words: list[str] | None = None) -> CueHits:
    """Which of the language's cue patterns match, their capped total weight, and categories.

    `words`, if given, is filled with the folded text's words (`words_of`), read on the way,
    for the n-gram models (`ComplaintModel.probability`)."""
    folded = folded_body(text) if folded is None else folded
    total = 0.0
    found: dict[str, float] = {}
    signals = []
    # A cue is only tried where one of its literal prefixes occurs (at a word start for
    # \b-patterns, anywhere otherwise): every match begins at one of those places, so `match`
    # at each of them in turn finds the same first match as a search from the start.
    all_cues, always, by_word_start, _ = _cue_index(lang)
    starting = _starting_cues(lang)
    lengths = _prefix_lengths(lang)
    starts: dict[int, list[int]] = {}  # cue -> the places it can match, in order
    append = words.append if words is not None else None
    for word in _WORD.finditer(folded):
        token = word.group()
        if append is not None:
            append(token)
        hit = starting.get(token)
        if hit is None:
            keys = [token[:length] for length in lengths if length <= len(token)]  # longer: token itself
            keys.append(token + WHOLE_WORD)
            hit = tuple(dict.fromkeys(i for key in keys for i in by_word_start.get(key, ())))
            if len(starting) > 100_000:  # bound memory on endless novel words
                starting.clear()
            starting[token] = hit
        if hit:
            position = word.start()
            for index in hit:
                places = starts.get(index)
                if places is None:
                    starts[index] = [position]
                else:
                    places.append(position)
    finder = _substring_finder(lang)
    if finder is not None:
        # one pass of a character class finds every place some substring prefix may start
        pattern, by_first = finder
        for at in pattern.finditer(folded):
            position = at.start()
            for prefix, indices in by_first[folded[position]]:
                if folded.startswith(prefix, position):
                    for index in indices:
                        places = starts.get(index)
                        if places is None:
                            starts[index] = [position]
                        elif places[-1] != position:
                            places.append(position)
    for index in sorted(starts.keys() | always) if always else sorted(starts):
        cue = all_cues[index]
        places = starts.get(index)
        if places is None:
            match = cue.pattern.search(folded)
        else:
            matcher = cue.pattern.match
            for position in places:
                match = matcher(folded, position)
                if match is not None:
                    break
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
def _substring_finder(lang: str) -> tuple[re.Pattern[str], dict[str, tuple[tuple[str, tuple[int, ...]], ...]]] | None:
    """For the cues matched anywhere (Chinese has no word starts): a pattern whose matches are the
    places where one of their prefixes may start (the prefixes' first characters), and first
    character -> (prefix, its cues).  A look-ahead alternation of the 222 prefixes themselves
    compared each character with each of them."""
    by_substring = _cue_index(lang)[3]
    if not by_substring:
        return None
    by_first: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for prefix, indices in by_substring.items():
        by_first.setdefault(prefix[0], []).append((prefix, indices))
    first_characters = "".join(map(re.escape, sorted(by_first)))
    return re.compile(f"[{first_characters}]"), {k: tuple(v) for k, v in by_first.items()}


@cache
def _starting_cues(lang: str) -> dict[str, tuple[int, ...]]:
    """word -> the cues a word-start prefix of it can start (filled as words are met: they repeat)."""
    return {}


@cache
def _prefix_lengths(lang: str) -> tuple[int, ...]:
    """The lengths of the word-start prefixes in `_cue_index` (a word is looked up by each, and as
    a whole word)."""
    return tuple(sorted({len(prefix) for prefix in _cue_index(lang)[2] if not prefix.endswith(WHOLE_WORD)}))


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
        if cue.prefixes is None or "" in cue.prefixes:  # no prefix known: searched everywhere
            always.append(index)
            continue
        table = by_word_start if cue.word_start else by_substring
        for prefix in cue.prefixes:
            table.setdefault(prefix, []).append(index)
    return (all_cues, tuple(always), {k: tuple(v) for k, v in by_word_start.items()},
            {k: tuple(v) for k, v in by_substring.items()})


class CompactWeights(Mapping[str, float]):
    """Feature name -> weight, read-only: the names in a marisa trie, the weights in an array
    of doubles indexed by the trie's key ids (both memory-mapped from the cache directory in the
    daemon, `load_model`), ~1.5 MB where a dict of the same ~55,000 names costs ~10 MB."""

    __slots__ = ("trie", "values")

    def __init__(self, trie: Any, values: Sequence[float]) -> None:
        if len(values) != len(trie):
            raise ValueError("a weight per feature name")
        self.trie = trie
        self.values = values

    @classmethod
    def of(cls, weights: Mapping[str, float]) -> CompactWeights:
        """The compact form of a {name: weight} mapping, in memory."""
        import marisa_trie

        trie = marisa_trie.Trie(weights.keys())
        values = array("d", bytes(8 * len(trie)))
        for name, weight in weights.items():
            values[trie.key_id(name)] = float(weight)
        return cls(trie, values)

    def __getitem__(self, name: str) -> float:
        key = self.trie.get(name)
        if key is None:
            raise KeyError(name)
        return self.values[key]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        key = self.trie.get(name)
        return default if key is None else self.values[key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.trie

    def __iter__(self) -> Iterator[str]:
        return iter(self.trie.keys())

    def __len__(self) -> int:
        return len(self.trie)


# Per-word sums kept per model: words repeat (10,000 bench/throughput.py posts in six languages meet
# 5,475 distinct words, ~1.1 MB with the pair dicts, tracemalloc); emptied when this large (~4 MB).
WORD_CACHE_MAX = 20_000


@dataclass(frozen=True, slots=True)
class LinearModel:
    """Logistic regression over `feature_counts`, scaled by 1/sqrt(total count) as in training.

    `weights` may be a plain dict (training) or `CompactWeights` (the shipped model, `load_model`);
    inference always reads the compact form (a dict is converted once)."""

    intercept: float
    weights: Mapping[str, float]
    # word -> (its n-gram and word weights summed, how many features, the word pairs it starts:
    # {second word: weight} or None): words repeat across posts
    _word_cache: dict[str, tuple[float, int, dict[str, float] | None]] = field(default_factory=dict, compare=False, repr=False)
    _compact: CompactWeights | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        compact = self.weights if isinstance(self.weights, CompactWeights) else CompactWeights.of(self.weights)
        object.__setattr__(self, "_compact", compact)

    def _word(self, word: str) -> tuple[float, int, dict[str, float] | None]:
        cached = self._word_cache.get(word)
        if cached is None:
            grams = _word_grams(word)
            compact = self._compact
            assert compact is not None
            find, values = compact.trie.get, compact.values
            # the same additions in the same order as summing dict.get(name, 0.0): an absent
            # feature added 0.0, which leaves a sum unchanged
            total = sum(values[key] for key in map(find, grams) if key is not None)
            key = find(f"w:{word}")
            # the pairs it starts, as {second word: weight}, or None: a bigram is then looked up
            # without building its feature name (these dicts hold at most the model's ~20,000 pairs)
            prefix = f"w:{word} "
            start = len(prefix)
            pairs = {name[start:]: values[at] for name, at in compact.trie.items(prefix)} or None
            cached = (total + (0.0 if key is None else values[key]), len(grams) + 1, pairs)
            if len(self._word_cache) >= WORD_CACHE_MAX:  # bound memory on endless novel words
                self._word_cache.clear()
            self._word_cache[word] = cached
        return cached

    def logit(self, folded: str, *, words: list[str] | None = None) -> float:
        words = _WORD.findall(folded) if words is None else words
        if not words:
            return self.intercept
        cache, word_sums = self._word_cache, self._word
        entries = [cache.get(word) or word_sums(word) for word in words]
        total, count = 0.0, len(words) - 1  # one feature per bigram
        for entry in entries:
            total += entry[0]
            count += entry[1]
        for index in range(1, len(words)):
            following = entries[index - 1][2]
            if following is not None:
                total += following.get(words[index], 0.0)
        return self.intercept + total / math.sqrt(count)

    def to_json(self) -> dict[str, Any]:
        return {"intercept": self.intercept, "weights": dict(self.weights)}

    def contributions(self, folded: str, *, words: list[str] | None = None) -> dict[str, float]:
        """Each word's share of `logit` (the sum of its n-gram and word weights), and each word pair's.

        Grouped by word rather than by n-gram so `explain` reuses the per-word sums that
        `logit` already cached, and a reader sees words, not fragments like 'ed'."""
        parts, scale = self.unscaled_contributions(folded, words=words)
        return {name: value * scale for name, value in parts.items()}

    def unscaled_contributions(
        self, folded: str, *, words: list[str] | None = None
    ) -> tuple[dict[str, float], float]:
        """`contributions` before the 1/sqrt(count) scale, and that scale: the strongest can be
        picked before scaling (the scale is the same positive number for every part)."""
        words = _WORD.findall(folded) if words is None else words
        if not words:
            return {}, 1.0
        cache, out, count = self._word_cache, {}, len(words) - 1
        entries = [cache.get(word) or self._word(word) for word in words]
        for word, (partial, n, _) in zip(words, entries, strict=True):
            out[word] = out.get(word, 0.0) + partial
            count += n
        for index in range(1, len(words)):
            following = entries[index - 1][2]
            if following is not None:
                first, second = words[index - 1], words[index]
                weight = following.get(second)
                if weight:
                    name = f"{first} {second}"
                    out[name] = out.get(name, 0.0) + weight
        return out, 1.0 / math.sqrt(count)


def _size(part: tuple[str, float]) -> float:
    return abs(part[1])



# The negative model's combination inputs, in order (`NegativeModel.sentiment`): its own n-gram
# logit, the lexicon score's negative and positive parts, and whether the lexicon found no word.
COMBINE_TERMS: tuple[str, ...] = ("model", "negative", "positive", "no_word")
# Which of them get a language's own extra weight (and every language its own bias).
COMBINE_LANGUAGE_TERMS: tuple[str, ...] = ("model", "negative")
# complaint.json's `negative.words` when its n-grams were trained on `negation.scoped_words`
NEGATION_SCOPED = "negation-scoped"


@dataclass(frozen=True, slots=True)
class NegativeModel:
    """How negative a post is, from its wording and the lexicon score together (scripts/train_complaint.py).

    A logistic regression fitted on the calibration split gives P(negative) from the n-gram logit and
    the lexicon score; the sentiment is 1 - 2P (its bias moved so that -0.05 is the cut chosen there).
    With `scoped`, the n-grams read the words a negator reaches as words of their own
    (`negation.scoped_words`), as the model was trained."""

    ngrams: LinearModel
    combine: dict[str, float]
    by_lang: dict[str, dict[str, float]] = field(default_factory=dict)
    scoped: bool = False
    _by_lang_weights: dict[str, tuple[float, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, ngrams: LinearModel | None = None) -> NegativeModel:
        """From complaint.json's `negative` (`ngrams`: the n-gram model, if read elsewhere)."""
        if ngrams is None:
            ngrams = LinearModel(intercept=float(data["ngrams"]["intercept"]), weights=data["ngrams"]["weights"])
        by_lang = {lang: {k: float(v) for k, v in terms.items()} for lang, terms in data.get("combine_by_lang", {}).items()}
        return cls(ngrams=ngrams, combine={k: float(v) for k, v in data["combine"].items()}, by_lang=by_lang,
                   scoped=data.get("words") == NEGATION_SCOPED)

    def logit(self, folded: str, *, lang: str, words: list[str] | None = None) -> float:
        """The n-gram logit of the folded text (`words`: `words_of(folded)` if the caller has them)."""
        if self.scoped:
            words = scoped_words(folded, _WORD.findall(folded) if words is None else words, lang=lang)
        return self.ngrams.logit(folded, words=words)

    def _weights(self, lang: str) -> tuple[float, ...]:
        """(bias, each COMBINE_TERMS weight) with the language's own extras, cached per language."""
        cached = self._by_lang_weights.get(lang)
        if cached is None:
            shared, extra = self.combine, self.by_lang.get(lang, _NO_TERMS)
            cached = tuple(shared.get(name, 0.0) + extra.get(name, 0.0) for name in ("bias", *COMBINE_TERMS))
            if len(self._by_lang_weights) < 64:  # languages are few; an odd code is not kept
                self._by_lang_weights[lang] = cached
        return cached

    def sentiment(self, *, folded: str, lexical: float, lang: str, words: list[str] | None = None) -> float:
        """The post's sentiment -1..1 from its n-gram logit and the lexicon score `lexical` (`words`:
        `words_of(folded)` if the caller has them)."""
        bias, model, negative, positive, no_word = self._weights(lang)
        z = (bias + model * self.logit(folded, lang=lang, words=words) + negative * max(0.0, -lexical)
             + positive * max(0.0, lexical) + (no_word if abs(lexical) < 0.05 else 0.0))
        return 1.0 - 2.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


# The stacker's inputs, in order (`stack_inputs`), and how `explain` names each term.
STACK_TERMS: dict[str, str] = {
    "model": "n-gram model",
    "cues": "cues",
    "negative": "negative sentiment",
    "positive": "positive sentiment",
    "wording": "negative wording",
    "question": "question",
}


def stack_inputs(
    *, model_logit: float, cue_total: float, sentiment: float | None, wording: float = 0.0, question: bool = False
) -> list[float]:
    """The stacker's inputs, in the order of STACK_TERMS (scripts/train_complaint.py fits them so).

    `wording` is the negative model's own n-gram logit: how negative the words read, learnt
    from labelled posts in every language (VADER alone scores English)."""
    s = sentiment or 0.0
    return [model_logit, cue_total, max(0.0, -s), max(0.0, s), wording, 1.0 if question else 0.0]


# Per-language stacker terms (`ComplaintModel.by_lang`): which inputs get a language's own extra
# weight on top of the shared one. Corpora differ by language in how complaints read and how
# often sentiment or the n-gram model is right, so one set of weights fits none of them well.
LANGUAGE_TERMS: tuple[str, ...] = ("model", "negative")


@dataclass(frozen=True, slots=True)
class ComplaintModel:
    ngrams: LinearModel | None
    stack: dict[str, float]
    negative: NegativeModel | None = None
    # language -> {"bias": extra bias, term: extra weight for a LANGUAGE_TERMS input}
    by_lang: dict[str, dict[str, float]] = field(default_factory=dict)
    _by_lang_weights: dict[str, tuple[float, float, tuple[float, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def inputs(
        self,
        *,
        folded: str,
        cue_total: float,
        sentiment: float | None,
        question: bool = False,
        words: list[str] | None = None,
        lang: str = "",
    ) -> list[float]:
        """`stack_inputs` for one post, the words read once for both n-gram models (`words`: the
        folded text's words, `words_of(folded)`, if the caller has them)."""
        words = _WORD.findall(folded) if words is None else words
        model_logit = 0.0 if self.ngrams is None else self.ngrams.logit(folded, words=words)
        wording = 0.0
        if self.negative is not None and self.stack.get("wording"):
            wording = self.negative.logit(folded, lang=lang, words=words)
        return stack_inputs(
            model_logit=model_logit, cue_total=cue_total, sentiment=sentiment, wording=wording, question=question
        )

    def _weights(self, lang: str) -> tuple[float, float, tuple[float, ...]]:
        """(bias, the language's own bias, each input's weight with the language's extra), cached per language."""
        cached = self._by_lang_weights.get(lang)
        if cached is None:
            s, extra = self.stack, self.by_lang.get(lang, _NO_TERMS)
            weights = tuple(s.get(name, 0.0) + extra.get(name, 0.0) for name in STACK_TERMS)
            cached = (s["bias"], extra.get("bias", 0.0), weights)
            if len(self._by_lang_weights) < 64:  # languages are few; an odd code is not kept
                self._by_lang_weights[lang] = cached
        return cached

    def probability(
        self,
        *,
        text: str,
        cue_total: float,
        sentiment: float | None,
        folded: str | None = None,
        question: bool = False,
        lang: str = "",
        words: list[str] | None = None,
    ) -> tuple[float, list[float]]:
        """(complaint probability, the stacker's inputs: `stack_inputs`); `lang` picks its per-language
        terms; `words`: `words_of(folded)` if the caller has them (`cue_hits` reads them)."""
        folded = folded_body(text) if folded is None else folded
        inputs = self.inputs(
            folded=folded, cue_total=cue_total, sentiment=sentiment, question=question, words=words, lang=lang
        )
        bias, lang_bias, weights = self._weights(lang)
        z = bias + lang_bias + sum(map(operator.mul, weights, inputs))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z)))), inputs

    def explain(
        self, *, inputs: list[float], folded: str, top: int = 5, lang: str = "", words: list[str] | None = None
    ) -> list[str]:
        """What drove the complaint score: the stacker's terms, then the n-gram features that weigh most."""
        bias, lang_bias, weights = self._weights(lang)
        terms = {label: w * v for label, w, v in zip(STACK_TERMS.values(), weights, inputs, strict=True)}
        if lang_bias:
            terms[f"language {lang}"] = lang_bias
        shown = ", ".join(f"{name} {value:+.2f}" for name, value in terms.items() if abs(value) >= 0.005)
        out = [f"complaint logit {bias:+.2f} (bias){', ' + shown if shown else ''}"]
        if self.ngrams is not None and abs(inputs[0]) >= 0.25:
            parts, scale = self.ngrams.unscaled_contributions(folded, words=words)
            strongest = heapq.nlargest(top, parts.items(), key=_size)
            out.append("n-gram features: " + ", ".join(f"'{name}' {value * scale:+.2f}" for name, value in strongest))
        return out


_NO_TERMS: dict[str, float] = {}


@cache
def load_model(path: Path = MODEL_PATH) -> ComplaintModel:
    """The shipped model, read once; cues-and-sentiment only if the file is absent.

    The JSON file stays the reviewable, shipped form; the daemon reads a compact copy of it from
    the cache directory (feature names in marisa tries, weights in arrays of doubles, both
    memory-mapped), which a short-lived child process writes once, so that parsing ~107,000
    weights into dicts (~20 MB, and more at its peak) never happens in the daemon.  If that copy is
    broken it is rebuilt; if it cannot be written the model is read from the JSON here."""
    if not path.exists():
        return ComplaintModel(ngrams=None, stack=dict(_DEFAULT_STACK))
    directory = compact_dir(path)
    if directory is not None:
        loaded = _load_compact(directory)
        if loaded is not None:
            return loaded
        done = subprocess.run([sys.executable, "-c", _BUILD_CHILD, str(path), str(directory)], env=child_env(),
                              capture_output=True, check=False, timeout=600)
        loaded = _load_compact(directory)
        if loaded is not None:
            return loaded
        log.info("compact complaint model not built by a child process (%s); reading %s here",
                 done.stderr.decode("utf-8", "replace")[-500:].strip(), path)
    return model_from_json(json.loads(path.read_text(encoding="utf-8")))


def model_from_json(data: dict[str, Any]) -> ComplaintModel:
    """The model of complaint.json's contents (weights as dicts, converted by `LinearModel`)."""
    ngrams = LinearModel(intercept=float(data["ngrams"]["intercept"]), weights=data["ngrams"]["weights"])
    negative = NegativeModel.from_json(data["negative"]) if "negative" in data else None
    by_lang = {lang: {k: float(v) for k, v in terms.items()} for lang, terms in data.get("stack_by_lang", {}).items()}
    return ComplaintModel(
        ngrams=ngrams, stack={k: float(v) for k, v in data["stack"].items()}, negative=negative, by_lang=by_lang
    )


COMPACT_FORMAT = 2  # of the compact copy's files; another value (or none) is rebuilt (2: the negative model's `combine`)
_MAPPED: list[mmap.mmap] = []


def compact_dir(path: Path) -> Path | None:
    """Where the compact copy of the model file `path` is kept (named by a hash of its bytes)."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None
    return cache_root() / f"complaint-{COMPACT_FORMAT}-{digest}"


_BUILD_CHILD = (
    "import sys; from pathlib import Path; from monitor.triage.complaint import build_compact; "
    "build_compact(Path(sys.argv[1]), Path(sys.argv[2]))"
)



def build_compact(path: Path, directory: Path) -> None:
    """The child's side: write the compact copy of the model file `path` into `directory`,
    atomically (a broken copy there is replaced)."""

    data = json.loads(path.read_text(encoding="utf-8"))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent))
    try:
        parts = {"ngrams": data["ngrams"]}
        if "negative" in data:
            parts["negative"] = data["negative"]["ngrams"]
        for name, part in parts.items():
            compact = CompactWeights.of(part["weights"])
            compact.trie.save(str(staging / f"{name}.marisa"))
            values = array("d", compact.values)
            if sys.byteorder != "little":
                values.byteswap()
            (staging / f"{name}.f64").write_bytes(values.tobytes())
        rest = {key: value for key, value in data.items() if key not in ("ngrams", "negative")}
        rest["ngrams"] = {"intercept": data["ngrams"]["intercept"], "features": len(data["ngrams"]["weights"])}
        if "negative" in data:
            negative = {key: value for key, value in data["negative"].items() if key != "ngrams"}
            negative["ngrams"] = {"intercept": data["negative"]["ngrams"]["intercept"],
                                  "features": len(data["negative"]["ngrams"]["weights"])}
            rest["negative"] = negative
        rest["format"] = COMPACT_FORMAT
        (staging / "meta.json").write_text(json.dumps(rest), encoding="utf-8")  # written last
        put_in_place(staging, directory, ready=lambda d: _load_compact(d, keep=False) is not None)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _load_compact(directory: Path, *, keep: bool = True) -> ComplaintModel | None:
    """The model from its compact copy in `directory`, or None if that is absent or broken."""
    import marisa_trie

    backings: list[mmap.mmap] = []

    def part(name: str, spec: dict[str, Any]) -> LinearModel:
        trie = marisa_trie.Trie()
        trie.mmap(str(directory / f"{name}.marisa"))
        with (directory / f"{name}.f64").open("rb") as handle:
            backing = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        backings.append(backing)
        values = memoryview(backing).cast("d")
        if len(values) != len(trie) or int(spec["features"]) != len(trie):
            raise ValueError("inconsistent compact complaint model")
        return LinearModel(intercept=float(spec["intercept"]), weights=CompactWeights(trie, values))

    try:
        data = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        if data.get("format") != COMPACT_FORMAT or sys.byteorder != "little":
            return None
        ngrams = part("ngrams", data["ngrams"])
        negative = None
        if "negative" in data:
            spec = data["negative"]
            negative = NegativeModel.from_json(spec, ngrams=part("negative", spec["ngrams"]))
        by_lang = {lang: {k: float(v) for k, v in terms.items()}
                   for lang, terms in data.get("stack_by_lang", {}).items()}
        model = ComplaintModel(ngrams=ngrams, stack={k: float(v) for k, v in data["stack"].items()},
                               negative=negative, by_lang=by_lang)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError):
        return None
    if keep:
        _MAPPED.extend(backings)  # kept open for the life of the process
    return model



def release_caches() -> None:
    """Empty what the posts of a burst filled: the models' per-word sums, the n-gram tuples of
    novel words and the cue prefixes met.  The daemon calls this when it goes idle
    (monitor.runtime.memory.IdleTrim); the next posts' words fill them again."""
    if load_model.cache_info().currsize:  # never load the model just to empty it
        model = load_model()
        for linear in (model.ngrams, model.negative.ngrams if model.negative else None):
            if linear is not None:
                linear._word_cache.clear()
    _word_grams.cache_clear()
    _starting_cues.cache_clear()
