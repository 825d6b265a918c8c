"""Malloc tuning for a long-running daemon: cap glibc's arenas, hand free pages back to the system."""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept fixed


@cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...): nothing to tune
        return None


def trim_memory() -> None:
    """Hand the heap's free pages back to the system (glibc malloc_trim).  Python frees the
    objects of a poll at once, but the allocator keeps their pages: an idle daemon would sit
    at the size of its busiest minute (bench/memory.py).  The memory-mapped model pages that posts
    read go back too: every read-only mapping of a file in the model cache (release_mapped_files),
    and the rows the language identifier read from its tables."""
    from monitor.process import cache_root
    from monitor.triage import langid_model

    langid_model.release_rows()
    release_mapped_files(cache_root())
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


MADV_DONTNEED = 4  # Linux <sys/mman.h>


def release_mapped_files(root: Path) -> int:
    """Hand back the resident pages of every read-only mapping of a file under `root` (the cache of
    unpacked models), the bytes advised: our own mmaps of the language tables and the Chinese word
    counts, and the marisa tries (the Chinese word list, the complaint model's feature names), which
    marisa maps itself; after a burst those stayed resident (1.2 MB for the word list, `--smaps`).
    Clean file pages only, so nothing is lost: the next lookup reads them again from the page cache."""
    libc = _libc()
    if libc is None or not hasattr(libc, "madvise"):
        return 0
    prefix = str(root.resolve()) + os.sep
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return 0
    advised = 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(prefix) or "w" in fields[1]:
            continue  # not our file, or writable (its pages could hold changes)
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        if libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_DONTNEED) == 0:
            advised += end - start
    return advised


def limit_malloc_arenas(arenas: int = 1) -> None:
    """Cap glibc's per-thread heaps and keep large blocks out of them.  By default every busy thread
    may get its own arena (up to 8 per core) and freed memory stays in it, so a long-running daemon
    with a thread pool keeps growing its RSS (bench/memory.py); one arena is enough, as the threads
    take turns on the GIL anyway.  And glibc raises its mmap threshold each time a large block is
    freed, so a burst's later large blocks land in the heap, where what outlives them pins the
    pages; a fixed threshold maps each one apart and unmaps it when freed.  The environment's
    MALLOC_ARENA_MAX and MALLOC_MMAP_THRESHOLD_, if set, win."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return
    if not os.environ.get("MALLOC_ARENA_MAX"):
        libc.mallopt(M_ARENA_MAX, arenas)
    if not os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_caches() -> None:
    """Empty the caches a burst of posts filled that an idle daemon does not read: the triage
    models' per-word caches, the rules' text normalisation and the case look-ups' statements
    (each refilled by the next posts)."""
    from monitor.cases import pipeline
    from monitor.rules import match
    from monitor.triage import complaint, sentiment

    pipeline.release_statements()
    complaint.release_caches()
    sentiment.release_caches()
    match.normalize_text.cache_clear()


class IdleTrim:
    """Trims as soon as the daemon goes idle, not at the next SLA sweep (up to 15 s later): once
    every job that did work (a poll that stored new mentions, an outbox run that delivered) has had
    a run with nothing to do.  A burst's freed heap and model pages then go back within a poll
    interval of its end (bench/memory.py reads an idle daemon's RSS)."""

    def __init__(self, *, on_idle: Callable[[], None] | None = None) -> None:
        self._on_idle = on_idle  # what else to let go first (the daemon: its engine's statement cache)
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    def worked(self, job: str) -> None:
        with self._lock:
            self._busy.add(job)

    def nothing_to_do(self, job: str) -> None:
        with self._lock:
            if job not in self._busy:
                return
            self._busy.discard(job)
            idle = not self._busy
        if idle:
            if self._on_idle is not None:
                self._on_idle()
            release_caches()
            trim_memory()
