"""Triage's quick paths give what the plain ones give: the same scores, languages, cues and
emoji, whether a post is triaged alone or in a batch, with or without its signals."""

from __future__ import annotations

import math
import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.triage import langid_model, triage, triage_many
from monitor.triage.lang import _classify_many, detect_many
from monitor.triage.lexicon import (
    _COMBINING,
    _DIGIT_PLANES_END,
    _FOLD_EXTRA,
    clean,
    emoji_pattern,
    emoji_valence,
    fold,
    split_emoji,
)

SIX = ("en", "da", "hr", "ro", "id", "zh")
POSTS = [
    ("my order never arrived, 3 weeks and no refund. worst service ever!!! 😡", ""),
    ("min lampe er stadig ikke kommet efter tre uger, og ingen svarer", "en"),
    ("terima kasih banyak", "da"),
    ("paket nije stigao već dva tjedna, nitko ne odgovara na mailove 🙏", "hr"),
    ("comanda nu a ajuns nici acum, sunt foarte dezamăgit", ""),
    ("快递三周了还没到，客服也不回", ""),
    ("Das ist schlecht und teuer, nie wieder", "de"),
    ("RT @nordlysshop: love it 😍😍 https://t.co/abc", "en"),
    ("", ""),
    ("!!! ???", "en"),
    (":D", "en"),
    ("ok", "ro"),
]


def test_the_pipeline_s_triage_without_signals_scores_exactly_as_explain_does():
    texts = [text for text, _ in POSTS]
    hints = [hint for _, hint in POSTS]
    quiet = triage_many(texts, lang_hints=hints, languages=SIX, explain=False)
    shown = triage_many(texts, lang_hints=hints, languages=SIX)
    assert all(score.signals == () for score in quiet)
    assert all(score.signals for score in shown)
    for a, b in zip(quiet, shown, strict=True):
        assert (a.lang, a.sentiment, a.complaint, a.categories) == (b.lang, b.sentiment, b.complaint, b.categories)


def test_a_batch_gives_each_post_what_it_gets_alone():
    texts = [text for text, _ in POSTS]
    hints = [hint for _, hint in POSTS]
    for languages in (SIX, ("en", "da"), None):
        batch = triage_many(texts, lang_hints=hints, languages=languages)
        alone = [triage(text, lang_hint=hint, languages=languages) for text, hint in POSTS]
        assert batch == alone


def test_language_confidence_is_py3langid_s_own_ranking():
    # detect_many computes the posteriors of the whole batch together; each post ranked alone
    # (a batch of one) must give the same language and confidence to the digits explain shows.
    bodies = [clean(text) for text, _ in POSTS if text.strip("!? ")]
    for languages in (SIX, ("da", "en", "id")):
        found = detect_many(bodies, lang_hints=[""] * len(bodies), languages=languages)
        for body, (lang, reason) in zip(bodies, found, strict=True):
            if "langid" not in reason:
                continue
            expected, confidence, _ = _classify_many([body], tuple(sorted(languages)))[0]
            assert lang == expected
            assert reason.startswith(f"language {lang}: langid {confidence:.2f}")


def test_a_cue_that_starts_with_a_number_matches_any_digits():
    for text in ("3 weeks now and nothing from you", "٣ weeks now and nothing from you",
                 "three weeks now and nothing from you"):
        grievances = [s for s in triage(text, languages=SIX).signals if s.startswith("grievance")]
        assert grievances and grievances[0].endswith("weeks now and'"), text


def test_a_cue_with_an_optional_first_word_matches_with_or_without_it():
    for text in ("is anyone there? my order is missing", "anyone there? my order is missing"):
        assert triage(text, languages=SIX).categories == ("delivery", "no_response")


def test_every_digit_a_cue_can_start_with_is_listed():
    digit = re.compile(r"\d")
    assert not [c for c in range(_DIGIT_PLANES_END, 0x110000) if digit.match(chr(c))]


_EMOJI = sorted(emoji_valence())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=6), st.sampled_from(_EMOJI), st.sampled_from(["\u200d", "\ufe0f"])),
                max_size=12).map("".join))
def test_emoji_found_and_removed_as_the_emoji_pattern_does(text):
    assert split_emoji(text) == (emoji_pattern().findall(text), emoji_pattern().sub(" ", text))


_RT = re.compile(r"^\s*RT\b:?", re.IGNORECASE)
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["RT", "rt", " ", ":", "@", "bob", ".", "www", "http", "://", "#", "x", "\u00a0", "é"]),
                max_size=14).map("".join))
def test_clean_drops_rt_urls_and_handles_as_documented(text):
    expected = _HANDLE.sub(" ", _URL.sub(" ", _RT.sub(" ", text))).replace("#", " ")
    assert clean(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=5), st.sampled_from(["đ", "Đ", "ø", "Ø", "æ", "ł", "ß", "ı", "İ", "’", "‘", "é",
                                                                  "e\u0301", "ＡＢ", "ŞŢ", "Σ"])),
                max_size=10).map("".join))
def test_fold_is_lower_case_table_and_decomposition(text):
    lower = text.lower()
    expected = lower if lower.isascii() else _COMBINING.sub("", unicodedata.normalize("NFKD", lower.translate(_FOLD_EXTRA)))
    assert fold(text) == expected


def _plain_posterior(ident: langid_model.Identifier, text: str) -> list[float]:
    """py3langid's naive Bayes over the table, one feature at a time: sum(log1p(count) x row) + prior,
    times 1 / sqrt(bytes), normalised; aliased labels folded into the first."""
    data = langid_model.encode(text)
    visits = ident._automaton.features(data)
    size = len(ident.nb_classes)
    if not visits:
        scores = [1.0 / size] * size
    else:
        width, table = ident._row_bytes, ident._table
        sums: dict[int, int] = {}
        sizes: dict[int, int] = {}
        for feature, count in visits.items():
            row = int.from_bytes(table[feature * width : (feature + 1) * width], "little")
            sums[count] = sums.get(count, 0) + row
            sizes[count] = sizes.get(count, 0) + 1
        raw = ident._pc
        for count, total in sums.items():
            weight, shift = math.log1p(count) / ident._scale, sizes[count] * ident._offset
            fields = ident._fields.unpack(total.to_bytes(width, "little"))
            raw = [value + weight * (field + shift) for value, field in zip(raw, fields, strict=True)]
        top, temperature = max(raw), 1.0 / math.sqrt(len(data) or 1)  # py3langid multiplies by 1 / sqrt(bytes)
        scores = [math.exp((value - top) * temperature) for value in raw]
        scores = [value / sum(scores) for value in scores]
    for i, j in ident._alias_pairs:
        scores[i] += scores[j]
        scores[j] = 0.0
    return scores


def test_language_posteriors_are_the_naive_bayes_sums_feature_by_feature():
    texts = [text for text, _ in POSTS] + ["no no no no no no", "aaaa aaaa aaaa bbb", "Ünïcödé ÆØÅ 快递", "x" * 500]
    for languages in (frozenset(SIX) | {"de", "ms", "bs"}, None):
        ident = langid_model.identifier(languages)
        for text in texts:
            assert ident.posterior(clean(text)) == _plain_posterior(ident, clean(text)), text
