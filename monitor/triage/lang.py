"""Language detection for short posts: py3langid restricted to the brand's languages.

Why py3langid and not lingua: see monitor/data/lexicons/NOTES.md ("Language
detection"). Chinese is recognised by its script before any model runs. The model is
stored and scored by triage.langid_model (no numpy in the daemon).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import cache

from monitor.triage import langid_model
from monitor.triage.lexicon import clean

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\uac00-\ud7af]")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_NOT_LETTERS = re.compile(r"[\W\d_]+", re.UNICODE)  # the complement of _LETTER: counting by deletion
# When no language list is given we still detect among all ~100 languages, but a short
# Indonesian post often looks Malay, a Croatian one Bosnian/Serbian, a Danish one
# Norwegian; for a product that scores six languages these are its neighbours.
_NEIGHBOURS = {"ms": "id", "bs": "hr", "sr": "hr", "sl": "hr", "no": "da", "nb": "da", "nn": "da", "mo": "ro"}
# Below this langid confidence the platform's own guess (X's `lang`) wins, if allowed.
_HINT_WINS_BELOW = 0.9
# In a post this short the platform's guess wins unless langid is all but certain:
# character n-grams over a dozen words often take English for Danish, Indonesian, Croatian
# or Romanian, and X also sees the author's history.
_HINT_WINS_SHORTER_THAN = 80  # letters
_SHORT_HINT_WINS_BELOW = 0.9999
# If the configured languages together get less posterior than this, the post is in another language.
_FOREIGN_MASS = 0.02
# Languages a post to a brand in our markets is most often written in when it is not theirs.
_COMMON_FOREIGN = frozenset({"en", "de", "fr", "es", "pt", "it", "nl", "sv", "pl", "ru", "tr", "ar"})


log = logging.getLogger(__name__)
_cache_dir = langid_model.cache_dir


@cache
def _identifier(candidates: tuple[str, ...] | None) -> langid_model.Identifier:
    """The model restricted to `candidates` (None: all languages). Scoring cost grows with
    the number of languages, so a brand's few languages plus the usual foreign ones
    classify about 4x faster than the full ~100."""
    return langid_model.identifier(None if candidates is None else frozenset(candidates))


@cache
def _known_labels() -> frozenset[str]:
    return frozenset(langid_model.automaton().classes)


def _allowed(languages: Sequence[str] | None) -> tuple[str, ...] | None:
    """The configured languages langid knows (an unknown code in rules.yaml is ignored here)."""
    if languages is None:
        return None
    return _allowed_of(tuple(languages))


@cache
def _allowed_of(languages: tuple[str, ...]) -> tuple[str, ...] | None:
    known = _known_labels()
    allowed = tuple(sorted({lang.lower() for lang in languages if lang and lang.lower() in known}))
    return allowed or None


def warm_up() -> None:
    """Load the langid model now instead of on the first post."""
    langid_model.automaton()


def detect(
    text: str, *, lang_hint: str = "", languages: Sequence[str] | None = None, cleaned: str | None = None
) -> tuple[str, str]:
    """Return (ISO 639-1 code or "und", a short reason for `explain`)."""
    return _detect_all([clean(text) if cleaned is None else cleaned], [lang_hint], _allowed(languages), explain=True)[0]


def detect_many(
    bodies: Sequence[str], *, lang_hints: Sequence[str], languages: Sequence[str] | None = None,
    explain: bool = True,
) -> list[tuple[str, str]]:
    """`detect` for each of some cleaned texts, in order (`explain=False`: every reason is "")."""
    return _detect_all(bodies, lang_hints, _allowed(languages), explain=explain)


def _detect_all(
    bodies: Sequence[str], lang_hints: Sequence[str], allowed: tuple[str, ...] | None, *, explain: bool
) -> list[tuple[str, str]]:
    """What the script and the configuration decide first, then langid for the rest, all at once
    (its C path walks a batch's posts together)."""
    found: list[tuple[str, str]] = []
    waiting: list[tuple[int, str, int]] = []  # (index, hint, letters) of the posts langid decides
    for body, lang_hint in zip(bodies, lang_hints, strict=True):
        hint = (lang_hint or "").lower().split("-")[0]
        hint = "" if hint in ("und", "qme", "qht", "zxx", "art") else hint
        letters = len(_NOT_LETTERS.sub("", body))  # as len(_LETTER.findall(body)), without a list of letters
        early = _before_langid(body, hint, letters, allowed, explain=explain)
        if early is None:
            waiting.append((len(found), hint, letters))
            early = ("", "")  # replaced below
        found.append(early)
    if waiting:
        ranked = _classify_many([bodies[index] for index, _, _ in waiting], allowed)
        for (index, hint, letters), (lang, confidence, foreign) in zip(waiting, ranked, strict=True):
            found[index] = _after_langid(lang, confidence, foreign, hint, letters, allowed, explain=explain)
    return found


def _before_langid(
    body: str, hint: str, letters: int, allowed: tuple[str, ...] | None, *, explain: bool
) -> tuple[str, str] | None:
    """The answer when langid is not needed (no letters, Chinese script, one language), else None."""
    if not letters:
        if hint and (allowed is None or hint in allowed):
            return hint, f"language {hint}: platform hint, no letters" if explain else ""
        return "und", "language und: no letters" if explain else ""
    han = 0 if body.isascii() else len(_HAN.findall(body))
    if han and han >= 0.3 * letters and not _KANA_HANGUL.search(body):
        if allowed is None or "zh" in allowed:
            return "zh", f"language zh: {han} Han characters" if explain else ""
    if allowed is not None and len(allowed) == 1:
        return allowed[0], f"language {allowed[0]}: the only configured language" if explain else ""
    return None


def _after_langid(
    lang: str, confidence: float, foreign: bool, hint: str, letters: int, allowed: tuple[str, ...] | None, *,
    explain: bool,
) -> tuple[str, str]:
    """langid's answer, or the platform's hint where langid is not sure enough."""
    if foreign:
        return lang, f"language {lang}: langid {confidence:.2f}, not a configured language" if explain else ""
    short = letters < _HINT_WINS_SHORTER_THAN
    if hint and hint != lang and short and confidence < _SHORT_HINT_WINS_BELOW and (allowed is None or hint in allowed):
        return hint, f"language {hint}: platform hint over langid {lang} {confidence:.4f}, short post" if explain else ""
    if hint and hint != lang and confidence < _HINT_WINS_BELOW and (allowed is None or hint in allowed):
        return hint, f"language {hint}: platform hint over langid {lang} {confidence:.2f}" if explain else ""
    return lang, f"language {lang}: langid {confidence:.2f}" if explain else ""


def _classify_many(bodies: Sequence[str], allowed: tuple[str, ...] | None) -> list[tuple[str, float, bool]]:
    """(language, confidence, foreign) of each body, their posteriors computed together.

    Restricting a naive-Bayes model to some classes only renormalises its posteriors, so
    one ranking over the configured languages plus the common foreign ones gives both
    answers: the best configured language, and whether the post is confidently in a
    language the brand did not configure (then its sentiment is unknown).
    """
    if allowed is None:
        ident = _identifier(None)
        found = []
        for posterior in ident.posteriors(bodies):
            top = posterior.index(max(posterior))  # the first of equal maxima, as max(range(...), key=...)
            lang = ident.nb_classes[top]
            found.append((_NEIGHBOURS.get(lang, lang), posterior[top], False))
        return found
    allowed_set, neighbours_of_allowed, candidates = _candidates(allowed)
    ident = _identifier(candidates)
    classes = ident.nb_classes
    allowed_index = _indices(candidates, allowed)
    found = []
    for scores in ident.posteriors(bodies):
        top = scores.index(max(scores))
        mass = sum(map(scores.__getitem__, allowed_index))
        if (
            mass <= _FOREIGN_MASS
            and classes[top] not in allowed_set
            and classes[top] not in neighbours_of_allowed
        ):
            found.append((classes[top], scores[top], True))
            continue
        best = max(allowed_index, key=scores.__getitem__)
        found.append((classes[best], (scores[best] / mass if mass else 0.0), False))
    return found


@cache
def _candidates(allowed: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    """(the configured languages, their neighbours, all languages ranked) for `_classify_many`."""
    allowed_set = frozenset(allowed)
    neighbours_of_allowed = frozenset(k for k, v in _NEIGHBOURS.items() if v in allowed_set)
    candidates = tuple(sorted((allowed_set | neighbours_of_allowed | _COMMON_FOREIGN) & _known_labels()))
    return allowed_set, neighbours_of_allowed, candidates


@cache
def _indices(candidates: tuple[str, ...], allowed: tuple[str, ...]) -> tuple[int, ...]:
    classes = _identifier(candidates).nb_classes
    return tuple(i for i, lang in enumerate(classes) if lang in allowed)
