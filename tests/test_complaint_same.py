"""The complaint stage's shortcuts (prefix index, one regex pass for Chinese prefixes, `match` at
candidate starts, shared words, the compact weights) give what the plain definitions give, on the
devset, hostile strings and posts in all six languages."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from monitor.triage import SUPPORTED_LANGUAGES, triage
from monitor.triage.complaint import (
    CATEGORIES,
    MODEL_PATH,
    CueHits,
    cue_hits,
    feature_counts,
    folded_body,
    load_model,
    words_of,
)
from monitor.triage.lexicon import clean, cues, is_question

ROOT = Path(__file__).resolve().parent.parent

HOSTILE = [
    "", " ", "!!!", "a", "w:a b", "\x00", "🙂😡 :D \\o/", "ŞŢăîâ", "æøå høre han stod", "ＡＢＣ１２３", "\u200b\u200d",
    "e\u0301", "a " * 300, "ß" * 50, "https://x.y/refund @refund #refund", "退款退款退款 refund refund", "不不不不",
    "快递快递快递还没到还没到", "没有没有回复回复", "123app APP一直一直上不去", "非常不好，快递三个星期还没到",
    "where is my order?? where is my order??", "never never never arrived", "rambursare rambursare nu",
    "pesanan belum sampai belum sampai", "narudžba nije stigla nije", "pakke ikke kommet ikke kommet",
    # whole-word prefixes ("no " is the word no, not not/now/nobody; "show" may go on: shows)
    "no reply", "not reply", "noreply", "no-one answers", "noone answers", "no one answers", "nobody answers",
    "not yet arrived", "notyet arrived", "hasn't arrived", "hasnt arrived", "has not arrived", "hasn_t arrived",
    "i owe you nothing, it was not", "owe them, never", "owed you, never", "shows as delivered, but", "show delivered, but",
    "says delivered, but", "sayss delivered, but", "2 weeks now", "twofold weeks now", "two weeks now", "٣ weeks now",
    "still waiting", "stillwaiting", "still_waiting", "where is my order", "whereis my order",
    "没到", "还没到", "迟迟未到", "快", "快递在哪", "物流信息一直不更新", "物",
]


def _texts() -> list[str]:
    texts = list(HOSTILE)
    for path in sorted((ROOT / "data" / "devset").glob("*.tsv")):
        with path.open(encoding="utf-8") as handle:
            texts += [row[0] for row in csv.reader(handle, delimiter="\t") if row]
    return texts


def _plain_cue_hits(folded: str, lang: str) -> CueHits:
    """The definition: every cue searched from the start of the text, in the file's order."""
    total, found, signals = 0.0, {}, []
    for cue in cues(lang):
        match = cue.pattern.search(folded)
        if match is None:
            continue
        total += cue.weight
        phrase = match.group(0).strip()
        if cue.category:
            found[cue.category] = max(found.get(cue.category, 0.0), cue.weight)
            signals.append(f"category {cue.category}: '{phrase}'")
        else:
            signals.append(f"grievance: '{phrase}'")
    return CueHits(total=min(total, 5.0), categories=tuple(c for c in CATEGORIES if c in found),
                   signals=tuple(dict.fromkeys(signals)))


def _plain_logit(weights: dict[str, float], intercept: float, folded: str) -> float:
    """The definition: the weights of the counted features, over sqrt(total count)."""
    counts: Counter[str] = feature_counts("", folded=folded)
    size = sum(counts.values())
    if not size:
        return intercept
    return intercept + sum(weights.get(name, 0.0) * n for name, n in counts.items()) / math.sqrt(size)


@pytest.mark.parametrize("lang", SUPPORTED_LANGUAGES)
def test_cues_are_those_a_plain_search_finds(lang: str) -> None:
    for text in _texts():
        folded = folded_body(text)
        words: list[str] = []
        assert cue_hits(text, lang=lang, folded=folded, words=words) == _plain_cue_hits(folded, lang), text
        assert words == words_of(folded)


def test_model_logits_are_the_json_weights_summed() -> None:
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    model = load_model()
    assert model.negative is not None and model.ngrams is not None
    for text in _texts():
        folded = folded_body(text)
        for linear, part in ((model.ngrams, data["ngrams"]), (model.negative.ngrams, data["negative"]["ngrams"])):
            expected = _plain_logit(part["weights"], part["intercept"], folded)
            assert linear.logit(folded) == pytest.approx(expected, abs=1e-9), text
            assert linear.logit(folded, words=words_of(folded)) == linear.logit(folded)


def test_triage_gives_the_score_of_the_plain_parts() -> None:
    model = load_model()
    for text in _texts()[:600]:
        score = triage(text, languages=SUPPORTED_LANGUAGES)
        cleaned = clean(text)
        folded = folded_body(text, cleaned=cleaned)
        cue_lang = score.lang if score.lang in SUPPORTED_LANGUAGES else "en"
        probability, _ = model.probability(
            text=text, cue_total=_plain_cue_hits(folded, cue_lang).total, sentiment=score.sentiment, folded=folded,
            question=is_question(cleaned, lang=cue_lang, folded=folded), lang=score.lang)
        assert score.complaint == round(probability, 4), text
