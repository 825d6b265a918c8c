"""The language identifier's C accelerator (monitor/triage/_langid_walk.c) gives the Python path's
posteriors to the last bit, alone or with a page of posts walked together; the install builds it,
and without it the same languages come out."""

from __future__ import annotations

import csv
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.triage import langid_model
from monitor.triage.lang import _candidates, _identifier, detect_many
from monitor.triage.lexicon import clean

ROOT = Path(__file__).resolve().parent.parent
SIX = ("en", "da", "hr", "ro", "id", "zh")
HOSTILE = [
    "", " ", "12345", "!!!", "😡😡😡", "ALL CAPS POST ABOUT MY ORDER", "\x00\x01\x02 abc", "a\x00b",
    "\ud800\udfff lone surrogates \udc80", "e\u0301e\u0301 combining", "ﬁ ligature ＦＵＬＬ", "مرحبا بالعالم",
    "Привет мир", "快递 太慢 了", "これは日本語です", "한국어", "x" * 5000, "ab" * 3000, " ".join(["no"] * 700),
    "\u200b\u200d\ufeff", "İstanbul ıi", "ß" * 40, "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕏", "\U0010ffff\U000e0001", "ĐđŁł øæ",
    "".join(map(chr, range(32, 1200))), "".join(map(chr, range(0x4E00, 0x4E00 + 400))), "ok", "k", "?",
    # long posts with many distinct counts (the C path's allocations beyond its stack buffers)
    " ".join(word * n for n, word in enumerate(["a", "bo", "kat", "hund", "å", "ž", "快"], start=1)) * 60,
]


def _devset_texts() -> list[str]:
    texts = []
    for path in sorted((ROOT / "data" / "devset").glob("*.tsv")):
        with path.open(encoding="utf-8") as handle:
            texts += [row["text"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
                      if row.get("text")]
    return texts


def _identifiers() -> list[langid_model.Identifier]:
    """The six languages' candidates (what the default rules use), and the full model (aliased labels)."""
    return [_identifier(_candidates(SIX)[2]), _identifier(None)]


def test_the_install_built_the_accelerator():
    if not langid_model.ACCELERATED:
        message = "monitor.triage._langid_walk is not built: `pip install -e .` needs a C compiler and Python.h"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    assert all(ident.accelerated for ident in _identifiers())


needs_accelerator = pytest.mark.skipif(not langid_model.ACCELERATED, reason="the C accelerator is not built")


@needs_accelerator
def test_c_and_python_posteriors_are_equal_on_the_devset_and_hostile_strings():
    bodies = [clean(text) for text in _devset_texts() + HOSTILE]
    assert len(bodies) > 3000
    for ident in _identifiers():
        in_python = [ident.posterior_in_python(body) for body in bodies]
        for body, expected in zip(bodies, in_python, strict=True):
            assert ident.posterior(body) == expected, body
        for page in range(0, len(bodies), 100):  # as triage_many's pages are walked together
            assert ident.posteriors(bodies[page : page + 100]) == in_python[page : page + 100]


_TEXTS = st.one_of(st.text(max_size=300), st.text(alphabet="abcdeøæåžčćşţăîâ快递 .!", max_size=900))


@needs_accelerator
@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_c_and_python_posteriors_are_equal_on_any_text(text):
    for ident in _identifiers():
        assert ident.posterior(text) == ident.posterior_in_python(text)


@needs_accelerator
@settings(max_examples=150, deadline=None)
@given(st.lists(_TEXTS, max_size=30))
def test_posts_walked_together_score_as_each_alone(texts):
    for ident in _identifiers():
        assert ident.posteriors(texts) == [ident.posterior_in_python(text) for text in texts]


@needs_accelerator
def test_a_model_file_cut_short_is_an_error_not_a_read_past_its_end():
    from monitor.triage import _langid_walk

    automaton = langid_model.automaton()
    ident = _identifier(_candidates(SIX)[2])
    table, width = ident._table, ident._row_bytes
    meta = {"field_bits": 32, "offset": ident._offset, "scale": ident._scale}
    short_table = _langid_walk.Scorer(automaton._nextmove, automaton._rowbase, automaton._output, table[: 10 * width],
                                      ident._pc, meta["field_bits"], meta["offset"], meta["scale"])
    with pytest.raises(ValueError, match="inconsistent"):
        short_table.posterior(b"my order never arrived")
    short_moves = _langid_walk.Scorer(automaton._nextmove[:300], automaton._rowbase, automaton._output, table,
                                      ident._pc, meta["field_bits"], meta["offset"], meta["scale"])
    with pytest.raises(ValueError, match="inconsistent"):
        short_moves.posterior(b"my order never arrived")
    with pytest.raises(ValueError, match="inconsistent automaton"):  # no state 0 to start from
        _langid_walk.Scorer(automaton._nextmove, automaton._rowbase[:0], automaton._output[:0], table, ident._pc,
                            meta["field_bits"], meta["offset"], meta["scale"])
    with pytest.raises(ValueError, match="32-bit"):  # such a table stays with the Python path
        _langid_walk.Scorer(automaton._nextmove, automaton._rowbase, automaton._output, table, ident._pc, 64,
                            meta["offset"], meta["scale"])


# pickled both ways: JSON would join an escaped lone surrogate pair into one character
_WITHOUT_ACCELERATOR = r"""
import pickle, sys
sys.modules["monitor.triage._langid_walk"] = None  # as if setup.py could not build it
from monitor.triage import langid_model, lang
texts, languages = pickle.load(sys.stdin.buffer)
idents = [lang._identifier(lang._candidates(tuple(languages))[2]), lang._identifier(None)]
pickle.dump({"accelerated": [langid_model.ACCELERATED] + [ident.accelerated for ident in idents],
             "languages": lang.detect_many(texts, lang_hints=[""] * len(texts), languages=languages)}, sys.stdout.buffer)
"""


def test_without_the_accelerator_the_python_path_gives_the_same_languages():
    texts = [clean(text) for text in _devset_texts()[::3] + HOSTILE]
    done = subprocess.run([sys.executable, "-c", _WITHOUT_ACCELERATOR], input=pickle.dumps((texts, SIX)),
                          capture_output=True, cwd=ROOT, check=True, timeout=300)
    without = pickle.loads(done.stdout)
    assert without["accelerated"] == [False, False, False]
    assert without["languages"] == detect_many(texts, lang_hints=[""] * len(texts), languages=SIX)
