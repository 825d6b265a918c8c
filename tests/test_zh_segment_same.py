"""Our Chinese segmenter (monitor.triage.zh_segment, over its compact table) cuts every text into
jieba's own words, with our lexicon's words added as the sentiment scorer adds them."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.triage.lexicon import fold, lexicon, zh_traditional
from monitor.triage.sentiment import _jieba

ROOT = Path(__file__).resolve().parent.parent


@cache
def _reference() -> Any:
    import jieba

    tokenizer = jieba.Tokenizer()
    lex = lexicon("zh")
    for word in sorted(word for word in [*lex.words, *lex.negators, *lex.intensifiers] if len(word) > 1):
        tokenizer.add_word(word)
    return tokenizer


def _differences(texts: list[str]) -> list[str]:
    ours, reference = _jieba(), _reference()
    return [text for text in texts if ours.lcut(text) != reference.lcut(text, HMM=False)][:5]


def test_the_devset_s_texts_are_cut_as_jieba_cuts_them():
    texts = []
    for path in sorted((ROOT / "data" / "devset").glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    texts += [fold(text).translate(zh_traditional()) for text in texts]  # as `_score_zh` reads them
    assert _differences(texts) == []


_LEXICON_WORDS = sorted(lexicon("zh").words)[:400]
_PIECES = st.one_of(
    st.sampled_from(_LEXICON_WORDS),
    st.text(alphabet="的了不好很太差快递客服没有退款質量問題一般老吗吧呢", max_size=6),
    st.sampled_from(["，", "。", "！", " ", "abc", "123", "A1", "#", "-", "\n", "😡"]),
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(_PIECES, max_size=12))
def test_generated_texts_are_cut_as_jieba_cuts_them(pieces):
    assert _differences(["".join(pieces)]) == []
