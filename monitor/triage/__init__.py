"""Language detection, sentiment and complaint signals: text in, Score out.

`triage` and `triage_many` are what the rest of the core relies on. The work is split
into triage.lang (which language), triage.sentiment (how negative) and
triage.complaint (is it a complaint, about what); data files live in monitor/data/.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from monitor.model import Score
from monitor.triage import negation
from monitor.triage.complaint import ComplaintModel, cue_hits, folded_body, load_model
from monitor.triage.lang import detect, detect_many
from monitor.triage.lexicon import SUPPORTED_LANGUAGES, clean, is_question
from monitor.triage.sentiment import sentiment as document_sentiment

__all__ = ["triage", "triage_many", "warm_up", "SUPPORTED_LANGUAGES"]

# Categories are named from this complaint probability on, or for a negative post: the default
# rules alert a person from this threshold on (recall-first; the one scripts/train_complaint.py
# chose on the calibration split) and on negative posts of verified accounts, and the alert
# should say what the post is about.
CATEGORIES_FROM = 0.4
NEGATIVE_AT = -0.05  # the default rules' `sentiment: {max: -0.05}`


def triage(
    text: str, *, lang_hint: str = "", languages: Sequence[str] | None = None, explain: bool = True
) -> Score:
    """Score one post: language, sentiment (-1..1 or None), complaint probability, categories.

    `explain=False` leaves `Score.signals` empty: the reasons are for `mention-monitor explain`,
    and spelling them out (above all the n-gram features behind the complaint score) costs about
    a tenth of a post's triage; nothing is stored or sent from them."""
    return triage_with(text, lang_hint=lang_hint, languages=languages, model=load_model(), explain=explain)


def triage_with(
    text: str,
    *,
    lang_hint: str = "",
    languages: Sequence[str] | None = None,
    model: ComplaintModel,
    explain: bool = True,
) -> Score:
    """`triage` with an explicit complaint model (cross-validation trains one per fold)."""
    cleaned = clean(text)
    lang, lang_signal = detect(text, lang_hint=lang_hint, languages=languages, cleaned=cleaned)
    return _score_all([text], cleaned=[cleaned], found=[(lang, lang_signal)], model=model, explain=explain)[0]


def _score_all(
    texts: Sequence[str],
    *,
    cleaned: Sequence[str],
    found: Sequence[tuple[str, str]],
    model: ComplaintModel,
    explain: bool,
) -> list[Score]:
    """Everything after language detection (`found`: each post's language and its reason), one
    stage at a time over all the posts: each stage's tables and caches stay in the CPU's caches from
    one post to the next (the more so as `triage_many` hands the posts in by language). Every stage
    of a post reads only that post's text and earlier stages' results for it."""
    # Every stage reads the same folded text (cues, both n-gram models, question openers, the
    # learned sentiment model): fold it once; it is the costliest clean-up of a non-ASCII post.
    folded = [folded_body(text, cleaned=body) for text, body in zip(texts, cleaned, strict=True)]
    langs = [lang for lang, _ in found]
    cue_langs = [lang if lang in SUPPORTED_LANGUAGES else "en" for lang in langs]
    # the folded words, read by the cues and handed on to the n-gram models
    words: list[list[str]] = [[] for _ in texts]
    hits = [
        cue_hits(text, lang=cue_lang, folded=form, words=bag)
        for text, cue_lang, form, bag in zip(texts, cue_langs, folded, words, strict=True)
    ]
    negative = model.negative
    sentiments = [
        document_sentiment(
            text, lang=lang, cleaned=body, negative_model=negative, folded=form, words=bag, explain=explain
        )
        for text, lang, body, form, bag in zip(texts, langs, cleaned, folded, words, strict=True)
    ]
    questions = [
        is_question(body, lang=cue_lang, folded=form)
        for body, cue_lang, form in zip(cleaned, cue_langs, folded, strict=True)
    ]
    scores = []
    for index, text in enumerate(texts):
        lang, sentiment, hit, question = langs[index], sentiments[index][0], hits[index], questions[index]
        probability, inputs = model.probability(
            text=text,
            cue_total=hit.total,
            sentiment=sentiment,
            folded=folded[index],
            question=question,
            lang=lang,
            words=words[index],
        )
        signals: tuple[str, ...] = ()
        if explain:
            signals = (
                found[index][1],
                *sentiments[index][1],
                *hit.signals,
                *model.explain(inputs=inputs, folded=folded[index], lang=lang, words=words[index]),
                f"complaint {round(probability, 4):.2f}",
            )
        negative_post = sentiment is not None and sentiment <= NEGATIVE_AT
        categories = _categories(
            hit.categories, alerted=probability >= CATEGORIES_FROM or negative_post, question=question
        )
        scores.append(
            Score(
                lang=lang,
                sentiment=sentiment,
                complaint=round(probability, 4),
                categories=categories,
                signals=signals,
            )
        )
    return scores


def _categories(cues: tuple[str, ...], *, alerted: bool, question: bool) -> tuple[str, ...]:
    """The complaint's categories for a post the default rules alert on; otherwise `question` for
    a post that asks something (a pre-sales question is not a complaint, but it is for the team)."""
    if alerted and cues:
        return cues
    return ("question",) if question else ()


def triage_many(
    texts: Sequence[str],
    *,
    lang_hints: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    explain: bool = True,
) -> list[Score]:
    """`triage` over a batch, in order (`explain=False`: no `signals`, as the pipeline stores none)."""
    hints = lang_hints if lang_hints is not None else [""] * len(texts)
    model = load_model()
    cleaned = [clean(text) for text in texts]
    languages_found = detect_many(cleaned, lang_hints=hints, languages=languages, explain=explain)
    # Scored one language after another (each language's lexicon, cues and n-gram caches stay in
    # the CPU's caches from one post to the next), returned in the batch's order.
    order = sorted(range(len(texts)), key=lambda index: languages_found[index][0])
    scored = _score_all(
        [texts[index] for index in order],
        cleaned=[cleaned[index] for index in order],
        found=[languages_found[index] for index in order],
        model=model,
        explain=explain,
    )
    scores: list[Score | None] = [None] * len(texts)
    for index, score in zip(order, scored, strict=True):
        scores[index] = score
    return cast(list[Score], scores)


def warm_up() -> None:
    """Load models and lexicons now, so the first real post is not slow."""
    triage("warm up", languages=SUPPORTED_LANGUAGES)
    for lang in SUPPORTED_LANGUAGES:
        document_sentiment("ok", lang=lang)
        cue_hits("ok", lang=lang)
    negation.warm_up()
