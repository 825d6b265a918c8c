"""Language detection, sentiment and complaint signals: text in, Score out.

`triage` and `triage_many` are what the rest of the core relies on. The work is split
into triage_lang (which language), triage_sentiment (how negative) and
triage_complaint (is it a complaint, about what); data files live in monitor/data/.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.model import Score
from monitor.triage.complaint import ComplaintModel, cue_hits, folded_body, load_model
from monitor.triage.lang import detect
from monitor.triage.lexicon import SUPPORTED_LANGUAGES, clean
from monitor.triage.sentiment import sentiment as document_sentiment

__all__ = ["triage", "triage_many", "warm_up", "SUPPORTED_LANGUAGES"]

# Categories are named from this complaint probability on: the default rules alert a
# person from 0.4 (recall-first), and the alert should say what the post is about.
CATEGORIES_FROM = 0.4


def triage(text: str, *, lang_hint: str = "", languages: Sequence[str] | None = None) -> Score:
    """Score one post: language, sentiment (-1..1 or None), complaint probability, categories."""
    return triage_with(text, lang_hint=lang_hint, languages=languages, model=load_model())


def triage_with(
    text: str, *, lang_hint: str = "", languages: Sequence[str] | None = None, model: ComplaintModel
) -> Score:
    """`triage` with an explicit complaint model (cross-validation trains one per fold)."""
    cleaned = clean(text)
    lang, lang_signal = detect(text, lang_hint=lang_hint, languages=languages, cleaned=cleaned)
    sentiment, sentiment_signals = document_sentiment(
        text, lang=lang, cleaned=cleaned, negative_model=model.negative
    )
    cue_lang = lang if lang in SUPPORTED_LANGUAGES else "en"
    folded = folded_body(text, cleaned=cleaned)
    hits = cue_hits(text, lang=cue_lang, folded=folded)
    probability, model_logit = model.probability(
        text=text, cue_total=hits.total, sentiment=sentiment, folded=folded
    )
    signals = [lang_signal, *sentiment_signals, *hits.signals, *model.explain(
        model_logit=model_logit, cue_total=hits.total, sentiment=sentiment, folded=folded
    )]
    signals.append(f"complaint {round(probability, 4):.2f}")
    return Score(
        lang=lang,
        sentiment=sentiment,
        complaint=round(probability, 4),
        categories=hits.categories if probability >= CATEGORIES_FROM else (),
        signals=tuple(signals),
    )


def triage_many(
    texts: Sequence[str], *, lang_hints: Sequence[str] | None = None, languages: Sequence[str] | None = None
) -> list[Score]:
    """`triage` over a batch, in order."""
    hints = lang_hints if lang_hints is not None else [""] * len(texts)
    return [triage(t, lang_hint=h, languages=languages) for t, h in zip(texts, hints, strict=True)]


def warm_up() -> None:
    """Load models and lexicons now, so the first real post is not slow."""
    triage("warm up", languages=SUPPORTED_LANGUAGES)
    for lang in SUPPORTED_LANGUAGES:
        document_sentiment("ok", lang=lang)
        cue_hits("ok", lang=lang)
