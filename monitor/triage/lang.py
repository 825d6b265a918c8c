"""Language detection for short posts: py3langid restricted to the brand's languages.

Why py3langid and not lingua: see monitor/data/lexicons/NOTES.md ("Language
detection"). Chinese is recognised by its script before any model runs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from array import array
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

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
_MAPPED: list[Any] = []  # memory-mapped model tables (for release_pages)


def _cache_dir() -> Path:
    """Where the unpacked langid model is kept between runs (about 70 MB)."""
    from importlib.metadata import version

    root = os.environ.get("MENTION_MONITOR_CACHE") or os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(root).expanduser() / "mention-monitor" / f"py3langid-{version('py3langid')}"


def _load_unpacked(directory: Path) -> Any:
    import numpy as np
    from py3langid.langid import LanguageIdentifier

    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    # The tokenizer's transition table (~40 MB) stays a memory-mapped file: a post visits a few
    # states, so only the pages it touches are ever read, and they are the kernel's to reclaim.
    table = np.load(directory / "nextmove.npy", mmap_mode="r")
    _MAPPED.append(table)
    nextmove = memoryview(table)
    row = array(meta["row_typecode"])
    row.frombytes(np.load(directory / "row.npy", mmap_mode="r").tobytes())
    return LanguageIdentifier(
        np.load(directory / "ptc.npy", mmap_mode="r"),
        np.load(directory / "pc.npy"),
        meta["classes"],
        nextmove,
        np.load(directory / "output.npy").tolist(),
        norm_probs=True,
        tk_row=row,
    )


def _save_unpacked(ident: Any, directory: Path) -> None:
    import numpy as np

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent))
    ptc, pc, classes = ident._full_model
    np.save(staging / "ptc.npy", np.asarray(ptc))
    np.save(staging / "pc.npy", np.asarray(pc))
    np.save(
        staging / "nextmove.npy", np.frombuffer(ident.tk_nextmove, dtype=f"u{ident.tk_nextmove.itemsize}")
    )
    np.save(staging / "row.npy", np.frombuffer(ident.tk_row, dtype=f"u{ident.tk_row.itemsize}"))
    np.save(staging / "output.npy", np.asarray(ident.tk_output, dtype=np.int32))
    meta = {
        "classes": list(classes),
        "nextmove_typecode": ident.tk_nextmove.typecode,
        "row_typecode": ident.tk_row.typecode,
    }
    (staging / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    try:
        staging.rename(directory)  # atomic: a half-written cache is never read
    except OSError:  # another process got there first; its copy is as good as ours
        shutil.rmtree(staging, ignore_errors=True)


@cache
def _base_identifier() -> Any:
    """py3langid's model. Unpacking its LZMA file takes ~1.5 s, so the unpacked
    arrays are cached on disk and memory-mapped on later starts (~0.1 s)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    try:
        directory = _cache_dir()
        if (directory / "meta.json").exists():
            return _load_unpacked(directory)
    except Exception:  # a broken cache must never stop triage; fall back to the slow path
        log.warning("langid model cache unreadable; unpacking the model again", exc_info=True)
        directory = None
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if directory is not None:
        try:
            _save_unpacked(ident, directory)
        except OSError:
            log.info("could not cache the unpacked langid model", exc_info=True)
    return ident


@cache
def _identifier(candidates: tuple[str, ...] | None) -> Any:
    """The model restricted to `candidates` (None: all languages). Scoring cost grows with
    the number of languages, so a brand's few languages plus the usual foreign ones
    classify about 4x faster than the full ~100."""
    import numpy as np

    base = _base_identifier()
    if candidates is None:
        return base
    full_ptc, full_pc, classes = base._full_model
    wanted = set(candidates)
    indices = [i for i, c in enumerate(classes) if c in wanted]
    ident = copy.copy(base)  # shares the tokenizer; the base stays whole
    ident.nb_classes = [classes[i] for i in indices]
    ident.nb_pc = np.asarray(full_pc)[indices]
    # a plain ndarray view of the mapped file: numpy.memmap's indexing adds ~3 us a post in Python
    ident.nb_ptc = np.asarray(_restricted_ptc(full_ptc, indices, labels=ident.nb_classes))
    ident._set_alias_pairs()
    return ident


def _restricted_ptc(full_ptc: Any, indices: list[int], *, labels: list[str]) -> Any:
    """The feature x language table for some languages, as float32 (float16 maths is slow).

    Kept as a memory-mapped file in the cache directory: a post reads only the rows of the
    features it contains, so the daemon holds a few MB of it instead of the whole table; and the
    full 100,000 x 142 table is read only once, when a new set of languages is first used."""
    import numpy as np

    def build() -> Any:
        table = np.ascontiguousarray(full_ptc[:, indices], dtype=np.float32)
        _release(full_ptc)  # building read the whole mapped table: hand those pages back
        return table

    try:
        directory = _cache_dir()
        key = hashlib.sha256(",".join(labels).encode()).hexdigest()[:16]
        path = directory / f"ptc-{key}.npy"
        if not path.exists():
            directory.mkdir(parents=True, exist_ok=True)
            fd, staging = tempfile.mkstemp(dir=directory, suffix=".npy")
            with os.fdopen(fd, "wb") as out:
                np.save(out, build())
            os.replace(staging, path)  # atomic: a half-written table is never read
        table = np.load(path, mmap_mode="r")
        _MAPPED.append(table)
        return table
    except (OSError, ValueError):
        log.info("could not cache the restricted langid table; keeping it in memory", exc_info=True)
        return build()


def release_pages() -> None:
    """Hand back the model pages this process has read.  They are clean file pages, read again
    from the page cache when a post needs them (a minor fault each); an idle daemon then holds
    none of the ~30 MB a day of posts touches."""
    for table in _MAPPED:
        _release(table)


def _release(table: Any) -> None:
    """Drop a memory-mapped array's resident pages from this process (they stay in the file)."""
    import mmap

    backing = getattr(table, "_mmap", None)
    if backing is not None and hasattr(backing, "madvise"):
        try:
            backing.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass


@cache
def _known_labels() -> frozenset[str]:
    return frozenset(_base_identifier().labels)


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
    _base_identifier().rank("warm up")


def detect(
    text: str, *, lang_hint: str = "", languages: Sequence[str] | None = None, cleaned: str | None = None
) -> tuple[str, str]:
    """Return (ISO 639-1 code or "und", a short reason for `explain`)."""
    body = clean(text) if cleaned is None else cleaned
    return detect_many([body], lang_hints=[lang_hint], languages=languages)[0]


def detect_many(
    bodies: Sequence[str], *, lang_hints: Sequence[str], languages: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """`detect` for each of some cleaned texts, in order: the language model scores them together
    (its posteriors are normalised in a few array operations for the batch instead of a dozen
    for each post; the numbers are the same)."""
    allowed = _allowed(languages)
    found: list[tuple[str, str] | None] = []
    pending: list[tuple[int, str, int]] = []  # (position, hint, letters) of the posts langid decides
    for position, (body, lang_hint) in enumerate(zip(bodies, lang_hints, strict=True)):
        hint = (lang_hint or "").lower().split("-")[0]
        hint = "" if hint in ("und", "qme", "qht", "zxx", "art") else hint
        early, letters = _without_model(body, hint, allowed)
        found.append(early)
        if early is None:
            pending.append((position, hint, letters))
    if pending:
        classified = _classify_many([bodies[position] for position, _, _ in pending], allowed)
        for (position, hint, letters), (lang, confidence, foreign) in zip(pending, classified, strict=True):
            found[position] = _with_hint(lang, confidence, foreign, hint=hint, letters=letters, allowed=allowed)
    return found  # type: ignore[return-value]  # every None was filled


def _without_model(body: str, hint: str, allowed: tuple[str, ...] | None) -> tuple[tuple[str, str] | None, int]:
    """(the answer when the text decides without the model, or None; its letter count)."""
    letters = len(_NOT_LETTERS.sub("", body))  # as len(_LETTER.findall(body)), without a list of letters
    if not letters:
        if hint and (allowed is None or hint in allowed):
            return (hint, f"language {hint}: platform hint, no letters"), letters
        return ("und", "language und: no letters"), letters
    han = 0 if body.isascii() else len(_HAN.findall(body))
    if han and han >= 0.3 * letters and not _KANA_HANGUL.search(body):
        if allowed is None or "zh" in allowed:
            return ("zh", f"language zh: {han} Han characters"), letters
    if allowed is not None and len(allowed) == 1:
        return (allowed[0], f"language {allowed[0]}: the only configured language"), letters
    return None, letters


def _with_hint(
    lang: str, confidence: float, foreign: bool, *, hint: str, letters: int, allowed: tuple[str, ...] | None
) -> tuple[str, str]:
    """The model's answer, or the platform's when the model is unsure (always on a short post)."""
    if foreign:
        return lang, f"language {lang}: langid {confidence:.2f}, not a configured language"
    short = letters < _HINT_WINS_SHORTER_THAN
    if hint and hint != lang and short and confidence < _SHORT_HINT_WINS_BELOW and (allowed is None or hint in allowed):
        return hint, f"language {hint}: platform hint over langid {lang} {confidence:.4f}, short post"
    if hint and hint != lang and confidence < _HINT_WINS_BELOW and (allowed is None or hint in allowed):
        return hint, f"language {hint}: platform hint over langid {lang} {confidence:.2f}"
    return lang, f"language {lang}: langid {confidence:.2f}"


def _classify_many(bodies: list[str], allowed: tuple[str, ...] | None) -> list[tuple[str, float, bool]]:
    """`_classify` of each text, the posteriors computed together (`_posteriors`)."""
    if allowed is None:
        ident = _identifier(None)
        scores = _posteriors(ident, bodies)
        if scores is None:
            return [_classify(body, allowed) for body in bodies]
        tops = scores.argmax(axis=1).tolist()  # what `classify` reads (no min_confidence is set)
        out = []
        for row, top in enumerate(tops):
            label = ident.nb_classes[top]
            out.append((_NEIGHBOURS.get(label, label), float(scores[row, top]), False))
        return out
    allowed_set, neighbours_of_allowed, candidates = _candidates(allowed)
    ident = _identifier(candidates)
    scores = _posteriors(ident, bodies)
    if scores is None:
        return [_classify(body, allowed) for body in bodies]
    classes = ident.nb_classes
    allowed_index = _indices(candidates, allowed)
    tops = scores.argmax(axis=1).tolist()
    allowed_scores = scores[:, allowed_index]
    masses = allowed_scores.sum(axis=1).tolist()
    bests = allowed_index[allowed_scores.argmax(axis=1)].tolist()
    out = []
    for row, (top, mass, best) in enumerate(zip(tops, masses, bests, strict=True)):
        if mass <= _FOREIGN_MASS and classes[top] not in allowed_set and classes[top] not in neighbours_of_allowed:
            out.append((classes[top], float(scores[row, top]), True))
        else:
            out.append((classes[best], (float(scores[row, best]) / mass if mass else 0.0), False))
    return out


def _classify(body: str, allowed: tuple[str, ...] | None) -> tuple[str, float, bool]:
    """(language, confidence, foreign), one text at a time through py3langid's own API.

    Restricting a naive-Bayes model to some classes only renormalises its posteriors, so
    one ranking over the configured languages plus the common foreign ones gives both
    answers: the best configured language, and whether the post is confidently in a
    language the brand did not configure (then its sentiment is unknown). `_classify_many`
    answers the same from the same posteriors; this is its fallback for a py3langid without
    the internals it reads.
    """
    import numpy as np

    if allowed is None:
        top, top_p = _identifier(None).classify(body)
        return _NEIGHBOURS.get(top, top), top_p, False
    allowed_set, neighbours_of_allowed, candidates = _candidates(allowed)
    ident = _identifier(candidates)
    classes = ident.nb_classes
    posterior = dict(ident.rank(body))
    scores = np.array([posterior.get(lang, 0.0) for lang in classes])
    allowed_index = _indices(candidates, allowed)
    top = int(scores.argmax())
    allowed_scores = scores[allowed_index]
    mass = float(allowed_scores.sum())
    if (
        mass <= _FOREIGN_MASS
        and classes[top] not in allowed_set
        and classes[top] not in neighbours_of_allowed
    ):
        return classes[top], float(scores[top]), True
    best = int(allowed_index[int(allowed_scores.argmax())])
    return classes[best], (float(scores[best]) / mass if mass else 0.0), False


@cache
def _candidates(allowed: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str], tuple[str, ...]]:
    """(the configured languages, their neighbours, all languages ranked) for `_classify`."""
    allowed_set = frozenset(allowed)
    neighbours_of_allowed = frozenset(k for k, v in _NEIGHBOURS.items() if v in allowed_set)
    candidates = tuple(sorted((allowed_set | neighbours_of_allowed | _COMMON_FOREIGN) & _known_labels()))
    return allowed_set, neighbours_of_allowed, candidates


@cache
def _indices(candidates: tuple[str, ...], allowed: tuple[str, ...]) -> Any:
    import numpy as np

    classes = _identifier(candidates).nb_classes
    return np.array([i for i, lang in enumerate(classes) if lang in allowed], dtype=np.intp)


def _posteriors(ident: Any, bodies: list[str]) -> Any:
    """py3langid's `_decide(body)` for each text, as the rows of one array, or None if this
    py3langid lacks the internals read here.

    The same floating-point operations as `_decide`, element by element (float32 throughout; a
    row's maximum and sum are reduced along the row as for one text), so every posterior is the
    one py3langid gives; only the dozen small array calls per post become a few per batch."""
    import numpy as np

    try:
        from py3langid.langid import visit_counts

        encode, table, sparse = ident._encode, ident.nb_ptc, ident._sparse_score
        aliases, normalised = ident._alias_pairs, ident._norm_probs
        nextmove, rowbase, output = ident.tk_nextmove, ident._rowbase, ident.tk_output
    except (AttributeError, ImportError):
        return None
    if not normalised:  # a raw-score identifier: not what detection reads
        return None
    rows, scales, featureless = [], [], []
    for position, body in enumerate(bodies):
        encoded = encode(body)
        visits = visit_counts(nextmove, rowbase, output, encoded)
        if visits:
            rows.append(sparse(visits, table))
        else:  # py3langid's own answer (uniform); kept apart so the batch stays float32 maths
            rows.append(None)
            featureless.append(position)
        scales.append(1.0 / math.sqrt(len(encoded) or 1))
    if featureless:
        width = len(ident.nb_classes)
        dtype = next((row.dtype for row in rows if row is not None), np.float32)
        rows = [np.zeros(width, dtype=dtype) if row is None else row for row in rows]
    scores = np.stack(rows)
    scores *= np.array(scales, dtype=scores.dtype)[:, None]
    np.exp(scores - scores.max(axis=1, keepdims=True), out=scores)
    scores /= scores.sum(axis=1, keepdims=True)
    for i, j in aliases:
        scores[:, i] += scores[:, j]
        scores[:, j] = 0.0
    for position in featureless:
        scores[position] = ident._decide(bodies[position])
    return scores
