"""Chinese words: jieba's dictionary segmentation (`lcut(text, HMM=False)`) over a compact table.

jieba keeps its dictionary as a dict of ~500,000 words and prefixes (~70 MB), and importing it
loads its HMM tables and pkg_resources besides.  The daemon does neither: a short-lived child
process builds jieba's table once (with our lexicon's words added, as `add_word` leaves it) and
writes it to the cache directory as a marisa trie of the words plus an array of their counts,
both memory-mapped here (file pages: shared, and the kernel's to reclaim).  `Segmenter.lcut`
is jieba's own algorithm over that table (the same DAG, the same route, the same ties), so the
words are jieba's (checked on every Chinese text of the devset and the bench stream).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import re
import shutil
import subprocess
import sys
import tempfile
from array import array
from collections.abc import Sequence
from math import log
from pathlib import Path
from typing import Any

from monitor.process import cache_root, child_env

log_ = logging.getLogger(__name__)

# jieba 0.42's patterns for its default (not cut_all) mode
_HAN = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._%\\-]+)", re.U)
_SKIP = re.compile("(\r\n|\\s)", re.U)
_ENG = re.compile("[a-zA-Z0-9]", re.U)
_LOG_ONE = log(1)


class Segmenter:
    """jieba's `Tokenizer.lcut(text, HMM=False)` over a trie of its words and their counts."""

    __slots__ = ("_trie", "_counts", "_log_total")

    def __init__(self, trie: Any, counts: Sequence[int], total: int) -> None:
        self._trie = trie
        self._counts = counts
        self._log_total = log(total)

    def lcut(self, sentence: str, HMM: bool = False) -> list[str]:  # noqa: N803 (jieba's name)
        if HMM:
            raise ValueError("only jieba's dictionary mode (HMM=False) is implemented")
        words: list[str] = []
        for block in _HAN.split(sentence):
            if not block:
                continue
            if _HAN.match(block):
                words.extend(self._cut_block(block))
                continue
            for part in _SKIP.split(block):
                if _SKIP.match(part):
                    words.append(part)
                else:
                    words.extend(part)  # one character at a time, as jieba
        return words

    def _cut_block(self, block: str) -> list[str]:
        size = len(block)
        trie, counts, log_total = self._trie, self._counts, self._log_total
        # jieba builds the DAG (for each start, the ends of the dictionary words, count > 0, beginning
        # there), then the route backwards: its max over (log-probability of the word + best route
        # after it, end). One backward pass does both, each start's ends in the DAG's order, a later
        # end replacing the best only when strictly greater, as max() does.
        route: list[tuple[float, int]] = [(0.0, 0)] * (size + 1)
        for start in range(size - 1, -1, -1):
            best: tuple[float, int] | None = None
            for word, key in trie.iter_prefixes_with_ids(block[start:]):
                count = counts[key]
                if count:
                    after = start + len(word)
                    candidate = (log(count) - log_total + route[after][0], after - 1)
                    if best is None or candidate > best:
                        best = candidate
            # no word starts here: the character alone (count 1)
            route[start] = (_LOG_ONE - log_total + route[start + 1][0], start) if best is None else best
        words: list[str] = []
        start, buffer = 0, ""
        while start < size:
            end = route[start][1] + 1
            word = block[start:end]
            if len(word) == 1 and _ENG.match(word):
                buffer += word
            else:
                if buffer:
                    words.append(buffer)
                    buffer = ""
                words.append(word)
            start = end
        if buffer:
            words.append(buffer)
        return words


def cache_dir(added: Sequence[str]) -> Path | None:
    """Where the table for this jieba and these added words is kept between runs."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("jieba")
    except PackageNotFoundError:
        return None
    key = hashlib.sha256("\n".join(added).encode()).hexdigest()[:16]
    return cache_root() / f"jieba-{release}-{key}-mapped"


def segmenter(added: Sequence[str]) -> Segmenter:
    """jieba's segmentation with `added` words (sorted) added, from the cache; the cache is built
    first by a child process if absent (in this process if that fails, or held in memory if the
    cache directory cannot be written)."""
    directory = cache_dir(added)
    if directory is not None:
        loaded = _load(directory)
        if loaded is not None:
            return loaded
        words = "\n".join(added).encode("utf-8")
        done = subprocess.run([sys.executable, "-c", _BUILD_CHILD, str(directory)], input=words, env=child_env(),
                              capture_output=True, check=False, timeout=600)
        loaded = _load(directory)
        if loaded is not None:
            return loaded
        log_.info("jieba table not built by a child process (%s); building it here",
                  done.stderr.decode("utf-8", "replace")[-500:].strip())
    table, total = _jieba_table(added)
    if directory is not None and _save(directory, table, total):
        loaded = _load(directory)
        if loaded is not None:
            return loaded
    import marisa_trie

    trie = marisa_trie.Trie(table)
    counts = array("I", bytes(4 * len(trie)))
    for word, count in table.items():
        counts[trie.key_id(word)] = count
    return Segmenter(trie, counts, total)


_BUILD_CHILD = (
    "import sys; from pathlib import Path; from monitor.triage.zh_segment import build; "
    "build(Path(sys.argv[1]), sys.stdin.buffer.read().decode('utf-8').split('\\n'))"
)



def build(directory: Path, added: Sequence[str]) -> None:
    """The child's side: jieba's table with `added` words added, written to `directory`."""
    table, total = _jieba_table([word for word in added if word])
    if not _save(directory, table, total):
        raise SystemExit(f"could not write {directory}")


def _jieba_table(added: Sequence[str]) -> tuple[dict[str, int], int]:
    """jieba's word -> count table (words and their prefixes, 0 for a prefix only) and total,
    after `add_word` of each of `added` in order (each word's count is suggested from those
    added before it)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    for word in added:
        tokenizer.add_word(word)
    return tokenizer.FREQ, int(tokenizer.total)


def _save(directory: Path, table: dict[str, int], total: int) -> bool:
    """Write the table where `_load` finds it, atomically; False if the directory is unwritable."""
    import marisa_trie

    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent))
    except OSError:
        return False
    try:
        trie = marisa_trie.Trie(table)
        counts = array("I", bytes(4 * len(trie)))
        for word, count in table.items():
            counts[trie.key_id(word)] = count
        trie.save(str(staging / "words.marisa"))
        (staging / "counts.u32").write_bytes(counts.tobytes())
        (staging / "meta.json").write_text(json.dumps({"total": total, "words": len(trie)}), encoding="utf-8")
        staging.rename(directory)  # if another process got there first, its copy is as good
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return (directory / "meta.json").exists()


def _load(directory: Path) -> Segmenter | None:
    import marisa_trie

    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        trie = marisa_trie.Trie()
        trie.mmap(str(directory / "words.marisa"))
        with (directory / "counts.u32").open("rb") as handle:
            backing = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        counts = memoryview(backing).cast("I")
        if len(counts) != len(trie) or int(meta["words"]) != len(trie):
            return None
    except (OSError, ValueError, KeyError, RuntimeError):
        return None
    return Segmenter(trie, counts, int(meta["total"]))  # `counts` keeps the mapping open
