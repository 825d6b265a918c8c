"""py3langid's model stored compactly and scored without numpy, restricted to some languages.

The daemon never unpacks py3langid's model nor imports numpy (~15 MB resident by itself): a
short-lived child process unpacks it once into the cache directory, as flat files that are
memory-mapped here (the byte automaton; a post visits a few of its states, so only those pages
are ever read, and they are the kernel's to reclaim).  For each set of languages the child also
writes that set's feature x language table as fixed-point integers (py3langid's float16
log-probabilities, all below -2, are exact at 2**9), one little-endian row per feature, so that a row read
with `int.from_bytes` is one Python integer holding every language's value in its own bit
field: adding a post's rows is one integer addition per feature instead of numpy's matrix
product, with the same naive-Bayes posterior as `LanguageIdentifier(norm_probs=True)`
(computed in float64 rather than float32).

Where setup.py could build it, the optional C module `_langid_walk` does a post's walk and
posterior over the same mapped files (no copy, no row cache) with the very same floats, about
ten times faster; without it the Python code below runs.  `ACCELERATED` says which.
"""

from __future__ import annotations

import json
import logging
import math
import mmap
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import cache
from importlib.metadata import version
from itertools import compress
from pathlib import Path
from typing import Any

from monitor.process import cache_root, child_env, put_in_place

try:  # built by setup.py where a C compiler is there (optional: the Python path gives the same floats)
    from monitor.triage import _langid_walk
except ImportError:
    _langid_walk = None

log = logging.getLogger(__name__)
ACCELERATED = _langid_walk is not None  # an Identifier may still use Python, for a table C does not take

FORMAT = 2  # of the cache directory's files; another value (or none) is rebuilt
_FEATURE_BITS = 17  # a post has at most 2**17 distinct features (the model has ~100,000): no field overflows
# Rows already read, per table: int.from_bytes costs ~3 ns a byte, and a day's posts use the same
# few thousand features again and again.  Emptied by release_rows, and when this large.
_ROWS_KEPT = 16_384
_ROW_CACHES: list[dict[int, int]] = []


def cache_dir() -> Path:
    """Where the unpacked model is kept between runs (about 70 MB of files)."""
    return cache_root() / f"py3langid-{version('py3langid')}-compact"


def table_key(columns: Sequence[int]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, columns)).encode()).hexdigest()[:16]


class Automaton:
    """py3langid's byte automaton: a post's bytes walked through it give its feature counts."""

    __slots__ = ("classes", "pc", "_nextmove", "_rowbase", "_output")

    def __init__(self, directory: Path, meta: dict[str, Any]) -> None:
        self.classes: list[str] = list(meta["classes"])
        self.pc: list[float] = [float(p) for p in meta["pc"]]
        self._nextmove = _mapped(directory / "nextmove.u32").cast("I")
        self._rowbase = _mapped(directory / "rowbase.u32").cast("I")
        self._output = _mapped(directory / "output.i32").cast("i")
        if len(self._rowbase) != len(self._output) or not self.classes:
            raise ValueError("inconsistent langid model cache")

    def features(self, data: bytes) -> Counter[int]:
        """{feature index: count} of the post's UTF-8 bytes (py3langid's `visit_counts`)."""
        nextmove, rowbase, output = self._nextmove, self._rowbase, self._output
        state, hits = 0, []
        append = hits.append
        for byte in data:
            state = nextmove[rowbase[state] + byte]
            feature = output[state]
            if feature >= 0:
                append(feature)
        return Counter(hits)

    def scorer(self, table: memoryview, pc: list[float], meta: dict[str, Any]) -> Any:
        """The C scorer of a table over this automaton's mapped files, or None: not built, or a table
        it does not take (64-bit fields)."""
        if _langid_walk is None:
            return None
        try:
            return _langid_walk.Scorer(self._nextmove, self._rowbase, self._output, table, pc,
                                       int(meta["field_bits"]), int(meta["offset"]), float(meta["scale"]))
        except ValueError:
            return None


class Identifier:
    """Naive Bayes over some of the model's languages: `posterior(text)` is py3langid's
    `_decide` with norm_probs (one probability per class, aliased labels folded into the first)."""

    __slots__ = ("nb_classes", "_automaton", "_pc", "_table", "_row_bytes", "_fields", "_offset", "_scale",
                 "_alias_pairs", "_rows", "_scorer")

    def __init__(self, automaton: Automaton, classes: list[str], table: memoryview, meta: dict[str, Any]) -> None:
        self.nb_classes = classes
        self._automaton = automaton
        self._pc = [float(p) for p in meta["pc"]]
        self._table = table
        field_bytes = int(meta["field_bits"]) // 8
        self._fields = struct.Struct(f"<{len(classes)}{'I' if field_bytes == 4 else 'Q'}")
        self._row_bytes = self._fields.size
        self._offset = int(meta["offset"])
        self._scale = float(meta["scale"])
        self._rows = _Rows(table, self._row_bytes)
        _ROW_CACHES.append(self._rows)
        first: dict[str, int] = {}
        self._alias_pairs = []
        for index, label in enumerate(classes):
            if label in first:
                self._alias_pairs.append((first[label], index))
            else:
                first[label] = index
        if len(table) % self._row_bytes or len(self._pc) != len(classes):
            raise ValueError("inconsistent langid table")
        self._scorer = automaton.scorer(table, self._pc, meta)

    @property
    def accelerated(self) -> bool:
        """Whether `posterior` runs in C (`_langid_walk`) rather than in Python."""
        return self._scorer is not None

    def posterior(self, text: str) -> list[float]:
        data = encode(text)
        scores = self._python_scores(data) if self._scorer is None else self._scorer.posterior(data)
        return self._aliases_folded(scores)

    def posteriors(self, texts: Sequence[str]) -> list[list[float]]:
        """`posterior` of each text: in C the posts are walked together, their cache misses overlapping."""
        if self._scorer is None:
            return [self.posterior(text) for text in texts]
        return [self._aliases_folded(scores) for scores in self._scorer.posteriors(list(map(encode, texts)))]

    def posterior_in_python(self, text: str) -> list[float]:
        """`posterior` by the Python path, even where the C one is built (the tests compare them)."""
        return self._aliases_folded(self._python_scores(encode(text)))

    def _aliases_folded(self, scores: list[float]) -> list[float]:
        for i, j in self._alias_pairs:
            scores[i] += scores[j]
            scores[j] = 0.0
        return scores

    def _python_scores(self, data: bytes) -> list[float]:
        visits = self._automaton.features(data)
        size = len(self.nb_classes)
        if not visits:
            scores = [1.0 / size] * size  # py3langid: all-zero scores, normalised
        else:
            # Rows are summed per count (most features occur once), exactly, as integers; each sum is
            # then weighted by log1p(count) as py3langid weights a feature seen `count` times.  The
            # counts are taken in the order they first occur (the float sums below depend on it), and
            # each count's rows are added up by `sum` and `map` without a Python step per feature.
            rows = self._rows
            if len(rows) > _ROWS_KEPT:
                rows.clear()
            row_of = rows.__getitem__
            sizes = Counter(visits.values())
            if len(sizes) == 1:
                sums = [(count, total, sum(map(row_of, visits))) for count, total in sizes.items()]
            else:
                features, counts = visits.keys(), visits.values()
                sums = [(count, total, sum(map(row_of, compress(features, map(count.__eq__, counts)))))
                        for count, total in sizes.items()]
            raw = self._pc
            unpack, width, offset, scale = self._fields.unpack, self._row_bytes, self._offset, self._scale
            for count, total, row_sum in sums:
                weight, shift = math.log1p(count) / scale, total * offset
                fields = unpack(row_sum.to_bytes(width, "little"))
                raw = [value + weight * (field + shift) for value, field in zip(raw, fields, strict=True)]
            temperature = 1.0 / math.sqrt(len(data) or 1)  # py3langid: T = sqrt(bytes)
            top, exp = max(raw), math.exp
            scores = [exp((value - top) * temperature) for value in raw]
            norm = sum(scores)
            scores = [value / norm for value in scores]
        return scores


class _Rows(dict[int, int]):
    """feature -> its table row as one integer, read from the mapped table on first use."""

    __slots__ = ("_table", "_width")

    def __init__(self, table: memoryview, width: int) -> None:
        super().__init__()
        self._table, self._width = table, width

    def __missing__(self, feature: int) -> int:
        start = feature * self._width
        row = self[feature] = int.from_bytes(self._table[start : start + self._width], "little")
        return row


def encode(text: str) -> bytes:
    """The bytes py3langid reads: NFC, lower-cased if all upper, UTF-8."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


def _mapped(path: Path) -> memoryview:
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        backing = mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) if size else None
    if backing is None:
        return memoryview(b"")
    return memoryview(backing)  # the view keeps the mapping open for the life of the process


def release_rows() -> None:
    """Forget the rows read from the mapped tables (the idle trim; the tables' pages themselves go
    back with every other cache file's, monitor.runtime.memory.release_mapped_files)."""
    for rows in _ROW_CACHES:
        rows.clear()


def _meta(directory: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


@cache
def automaton() -> Automaton:
    """The mapped automaton, unpacked first (in a child process) if the cache lacks it."""
    directory = _ensure(None)
    meta = _meta(directory)
    assert meta is not None
    return Automaton(directory, meta)


@cache
def identifier(languages: frozenset[str] | None) -> Identifier:
    """The model restricted to `languages` (None: all), its table built first if needed.  Its
    classes are in the model's order; a label the model has twice (sr, uz) keeps both columns."""
    classes = automaton().classes
    columns = tuple(i for i, label in enumerate(classes) if languages is None or label in languages)
    directory = _ensure(columns)
    key = table_key(columns)
    meta = json.loads((directory / f"table-{key}.json").read_text(encoding="utf-8"))
    return Identifier(automaton(), [classes[i] for i in columns], _mapped(directory / f"table-{key}.bin"), meta)


_directory: Path | None = None  # where this process found (or built) its model files


def _ensure(columns: tuple[int, ...] | None) -> Path:
    """A directory holding the unpacked model (and the table for `classes`).  Built by a short-lived
    child process, so unpacking (~1.5 s, ~130 MB) and numpy never stay in the daemon; in this
    process only if the child fails; in a private temporary directory if the cache is unwritable.
    `columns`: also the table of these classes (indices into the model's)."""
    global _directory
    directory = _directory or cache_dir()
    if _ready(directory, columns):
        _directory = directory
        return directory
    args = [str(directory), *map(str, columns or ())]
    done = subprocess.run([sys.executable, "-c", _BUILD_CHILD, *args], env=child_env(), capture_output=True,
                          check=False, timeout=600)
    if done.returncode != 0 or not _ready(directory, columns):
        log.info("langid cache not built by a child process (%s); building it here",
                 done.stderr.decode("utf-8", "replace")[-500:].strip())
        try:
            build(directory, columns)
        except OSError:
            directory = Path(tempfile.mkdtemp(prefix="mention-monitor-langid-"))
            log.warning("langid cache %s unwritable; using %s for this run", cache_dir(), directory)
            build(directory, columns)
    _directory = directory
    return directory


def _ready(directory: Path, columns: tuple[int, ...] | None) -> bool:
    if _meta(directory) is None:
        return False
    return columns is None or (directory / f"table-{table_key(columns)}.json").exists()


_BUILD_CHILD = (
    "import sys; from pathlib import Path; from monitor.triage.langid_model import build; "
    "build(Path(sys.argv[1]), tuple(map(int, sys.argv[2:])) or None)"
)



def build(directory: Path, columns: tuple[int, ...] | None) -> None:
    """Write the unpacked model into `directory` if it is absent or stale, then the table of
    `columns`.  Needs numpy and py3langid; every file appears atomically."""
    if _meta(directory) is None:
        _unpack(directory)
    if columns is not None and not (directory / f"table-{table_key(columns)}.json").exists():
        _write_table(directory, columns)


def _unpack(directory: Path) -> None:
    import numpy as np
    from py3langid.langid import MODEL_DIR, MODEL_FILE
    from py3langid.modelio import load_model

    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent))
    try:
        ptc, pc, classes, nextmove, row, output = load_model(MODEL_DIR / MODEL_FILE)
        np.save(staging / "ptc.npy", np.asarray(ptc, dtype=np.float16))
        (staging / "nextmove.u32").write_bytes(np.asarray(nextmove, dtype="<u4").tobytes())
        (staging / "rowbase.u32").write_bytes((np.asarray(row, dtype="<u4") << 8).tobytes())
        (staging / "output.i32").write_bytes(np.asarray(output, dtype="<i4").tobytes())
        meta = {"format": FORMAT, "classes": list(classes), "pc": [float(p) for p in np.asarray(pc)]}
        (staging / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        put_in_place(staging, directory, ready=lambda d: _meta(d) is not None)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if _meta(directory) is None:  # nobody else got there first
            raise


def _write_table(directory: Path, columns: tuple[int, ...]) -> None:
    import numpy as np

    meta = _meta(directory)
    assert meta is not None
    indices = list(columns)
    ptc = np.load(directory / "ptc.npy", mmap_mode="r")
    exact = np.asarray(ptc[:, indices], dtype=np.float64)
    scale = 1.0
    while not np.array_equal(np.rint(exact * scale), exact * scale) and scale < 2.0**24:
        scale *= 2  # the smallest power of two at which every value is an integer
    values = np.rint(exact * scale).astype(np.int64)
    offset = int(values.min())
    fields = values - offset  # >= 0
    bits = 32 if int(fields.max()).bit_length() + _FEATURE_BITS <= 32 else 64
    packed = np.ascontiguousarray(fields, dtype="<u4" if bits == 32 else "<u8")
    key = table_key(columns)
    fd, staging = tempfile.mkstemp(dir=directory, suffix=".bin")
    with os.fdopen(fd, "wb") as out:
        out.write(np.ascontiguousarray(packed).tobytes())
    os.replace(staging, directory / f"table-{key}.bin")
    pc = [meta["pc"][i] for i in indices]
    table_meta = {"classes": [meta["classes"][i] for i in indices], "pc": pc, "field_bits": bits, "offset": offset,
                  "scale": scale}
    fd, staging = tempfile.mkstemp(dir=directory, suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(table_meta, out)
    os.replace(staging, directory / f"table-{key}.json")  # written last: its presence means ready
