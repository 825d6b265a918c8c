"""Our VADER (monitor.triage.vader) scores every text exactly as the installed vaderSentiment does:
neg, neu, pos and compound, on the devset, the benchmark stream, generated strings full of VADER's
special cases, and English corpora read from the mirror at run time (never stored here)."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE, SPECIAL_CASES, SentimentIntensityAnalyzer

from monitor.triage.vader import Vader

ROOT = Path(__file__).resolve().parent.parent
MIRROR = Path("/work/.mirror")
PACKAGE = SentimentIntensityAnalyzer()
OURS = Vader()


def _differences(texts: list[str]) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    found = []
    for text in texts:
        expected, got = PACKAGE.polarity_scores(text), OURS.polarity_scores(text)
        if expected != got or OURS.compound(text) != expected["compound"]:
            found.append((text, expected, got))
    return found[:5]


HOSTILE = [
    "",
    " ",
    "!!!",
    "???",
    "NOT GOOD!!!",
    "not bad at all",
    "The food was good but the service SUCKS :(",
    "good good but bad bad good but great",
    "great, great BUT great great",
    "kind of great",
    "sort of bad",
    "the shit",
    "the bomb was the bomb",
    "he is a bad ass",
    "yeah right, great",
    "at least good",
    "very least good",
    "least good",
    "never so good",
    "never this bad",
    "without doubt good",
    "without a doubt good",
    "no good",
    "no",
    "no or nor good",
    "no no no",
    "I can't stand it, it isn't good",
    "VERY GOOD idea, EXTREMELY bad execution",
    "GOOD GOOD GOOD",
    ":) :( :D :-D (-:O",
    "I ❤️ it 😀, ok😀😀 fine 😡",
    "😀",
    " 😀 ",
    "a\x00b 😀 good",
    "\x00😀",
    "good\u00a0bad\u2003great",
    "ﬁne Straße naïve café GOOD",
    "kiss of death to die for beating heart bus stop",
    "just enough good",
]


def test_hostile_strings_score_as_the_package_scores_them():
    assert _differences(HOSTILE) == []


_WORDS = sorted(
    {
        *["good", "bad", "great", "love", "hate", "no", "not", "never", "least", "at", "very", "but", "BUT"],
        *["kind", "of", "sort", "so", "this", "without", "doubt", "or", "nor", "the", "shit", "bomb", "bad"],
        *[
            "ass",
            "yeah",
            "right",
            "kiss",
            "death",
            "to",
            "die",
            "for",
            "Good",
            "GOOD",
            "LOVE",
            "isn't",
            "wasn't",
        ],
        *["ok", "okay", "cool", "meh", "lol", ":)", ":(", ":D", "<3", "a", "it", "is", "was", "service"],
        *NEGATE,
        *BOOSTER_DICT,
        *(word for case in SPECIAL_CASES for word in case.split()),
    }
)
_PIECES = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from(_WORDS).map(str.upper),
    st.sampled_from(["!", "?", ",", ".", "...", "!!", "??", "'", '"', "(", ")", "-", ":", "\x00"]),
    st.sampled_from(sorted(OURS.emojis)[:200] + ["😀", "😡", "❤", "👍", "\u200d", "\ufe0f"]),
    st.text(max_size=4),
)
_SEPARATORS = st.sampled_from([" ", " ", " ", "", "  ", "\n", "\t", "\u00a0"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(_PIECES, _SEPARATORS), max_size=14))
def test_generated_texts_score_as_the_package_scores_them(pieces):
    text = "".join(piece + separator for piece, separator in pieces)
    assert _differences([text]) == []


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=60))
def test_any_text_scores_as_the_package_scores_it(text):
    assert _differences([text]) == []


def test_the_devset_and_the_benchmark_stream_score_as_the_package_scores_them():
    texts = []
    for path in sorted((ROOT / "data" / "devset").glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from common import Stream
    finally:
        sys.path.remove(str(ROOT / "bench"))
    stream = Stream(seed=7, start=datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    texts += [timed.record["text"] for timed in stream.steady(20_000, rate_per_s=2.0)]
    assert len(texts) > 20_000
    assert _differences(texts) == []


def _lines(repository: str, path: str) -> list[str]:
    git_dir = MIRROR / repository.replace("/", "+") / "repo"
    if not git_dir.is_dir():
        pytest.skip(f"{repository} is not mirrored under {MIRROR}")
    shown = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"HEAD:{path}"], capture_output=True, check=True
    )
    return shown.stdout.decode("utf-8", "replace").splitlines()


def test_xed_s_english_lines_score_as_the_package_scores_them():
    texts = [
        line.split("\t")[0]
        for path in ("AnnotatedData/en-annotated.tsv", "Projections/en-projections.tsv")
        for line in _lines("Helsinki-NLP/XED", path)
    ]
    assert len(texts) > 20_000
    assert _differences(texts) == []


def test_emobank_s_sentences_score_as_the_package_scores_them():
    texts = list(csv.reader(_lines("JULIELab/EmoBank", "corpus/emobank.csv")))
    assert len(texts) > 10_000
    assert _differences([row[-1] for row in texts if row]) == []
