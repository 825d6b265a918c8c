"""The learned negative model reads negation and "but" as the lexicon does (issue 13)."""

from __future__ import annotations

import json

import pytest

from monitor.triage import triage
from monitor.triage.complaint import MODEL_PATH, NegativeModel, folded_body, words_of
from monitor.triage.negation import scoped_words


def _read(text: str, lang: str) -> list[str]:
    folded = folded_body(text)
    return scoped_words(folded, words_of(folded), lang=lang)


@pytest.mark.parametrize(
    ("lang", "text", "words"),
    [
        # a negated lexicon word becomes its side; the reach ends at the first sentiment word
        ("id", "gak jelek kok", ["gak", "¬-", "kok"]),
        ("id", "kurang enak dan kemahalan", ["kurang", "¬+", "dan", "kemahalan"]),
        # other words in the reach are marked; a comma ends it
        ("hr", "nije stiglo ništa, koji cirkus", ["nije", "¬stiglo", "nista", "koji", "cirkus"]),
        # a lexicon word before "but" in its sentence becomes its side; one in the sentence before does not
        ("ro", "frumos, dar calitate slaba", ["<+", "dar", "calitate", "slaba"]),
        ("id", "enak. tapi mahal", ["enak", "tapi", "mahal"]),
        ("da", "Maden var god, men betjeningen var elendig", ["maden", "var", "<+", "men", "betjeningen", "var", "elendig"]),
    ],
)
def test_negative_model_reads_negation_and_but_like_the_lexicon(lang, text, words):
    assert _read(text, lang) == words


@pytest.mark.parametrize(("lang", "text"), [("zh", "不差"), ("en", "not bad at all"), ("id", "pesanan sudah sampai")])
def test_posts_without_a_scope_are_read_as_they_are(lang, text):
    folded = folded_body(text)
    words = words_of(folded)
    assert scoped_words(folded, words, lang=lang) is words


@pytest.mark.parametrize(("lang", "text"), [("id", "tidak mengecewakan"), ("hr", "nije lose uopce"), ("da", "slet ikke dårligt")])
def test_learned_model_itself_reads_a_negated_complaint_word_as_praise(lang, text):
    score = triage(text, lang_hint=lang, languages=[lang])
    learned = [s for s in score.signals if s.startswith("learned sentiment model +")]
    assert learned and score.sentiment is not None and score.sentiment > 0.05


def test_shipped_model_was_trained_on_the_rewritten_words_and_an_older_file_reads_plain_words():
    data = json.loads(MODEL_PATH.read_text(encoding="utf-8"))["negative"]
    assert NegativeModel.from_json(data).scoped
    older = {key: value for key, value in data.items() if key != "words"}
    assert not NegativeModel.from_json(older).scoped
