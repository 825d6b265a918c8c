"""The daemon with its memory traced: `python bench/memory_probe.py OUT.json -- run ARGS...`.

bench/memory.py --trace starts the daemon through this file instead of `python -m monitor`.
It records VmRSS around every first import of a module, charged to the top-level package
imported (minus what that import's own imports of other packages added; imports made once other
threads run go to one bucket, since what those threads allocate meanwhile would be counted), and the time the
daemon's start-up reached each package; on SIGUSR1 it writes OUT.json: that table and, when
Python runs with -X tracemalloc, the live heap allocations grouped by source file (and, from the
second signal on, what each file's allocations grew by since the previous one), and always the
heap: pymalloc's arenas and live blocks, gc-tracked objects by type, the modules loaded, and with
MEMORY_PROBE_HELD_BY=<type name, or module.qualname> the referrer chains of one such object; with
MEMORY_PROBE_RUN=<script.py> that script is run in the daemon at each signal and what it prints is reported.
Nothing else is imported here until a signal, so the daemon's imports are its own.
"""

from __future__ import annotations

import builtins
import json
import os
import runpy
import signal
import sys
import threading
import time
from typing import Any

_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_CONCURRENT = "(imports while other threads ran: not attributable)"
_original_import = builtins.__import__
_stack: list[list[Any]] = []  # [package, rss at start (kB), kB charged to nested packages]
_by_package: dict[str, float] = {}
_first_seen: dict[str, float] = {_CONCURRENT: 0.0}
_began = time.monotonic()


def _rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_KB


def _absolute(name: str, globals_: dict[str, Any] | None, level: int) -> str:
    if not level:
        return name
    package = (globals_ or {}).get("__package__") or ""
    parts = package.rsplit(".", level - 1)
    base = parts[0] if parts else package
    return f"{base}.{name}" if name else base


def _traced_import(name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    absolute = _absolute(name, globals_, level)
    if absolute in sys.modules and not fromlist:
        return _original_import(name, globals_, locals_, fromlist, level)
    package = absolute.split(".")[0]
    _first_seen.setdefault(package, round(time.monotonic() - _began, 3))
    parent_same = bool(_stack) and _stack[-1][0] == package
    before = _rss_kb()
    _stack.append([package, before, 0])
    try:
        return _original_import(name, globals_, locals_, fromlist, level)
    finally:
        _, _, nested = _stack.pop()
        if parent_same:  # a package importing its own submodule: all of it stays the package's
            _stack[-1][2] += nested
        else:
            grown = _rss_kb() - before
            # Once other threads run, what they allocate meanwhile would be charged to this import.
            charged = package if threading.active_count() == 1 else _CONCURRENT
            _by_package[charged] = _by_package.get(charged, 0) + grown - nested
            if _stack:
                _stack[-1][2] += grown


_previous: list[Any] = []  # the last tracemalloc snapshot, for the growth since it


_MALLOC_STATS = ("arenas allocated current", "arenas highwater mark", "arenas reclaimed",
                 "bytes in allocated blocks", "bytes in available blocks")


def _heap() -> dict[str, Any]:
    """What the heap holds beyond RSS: live objects by type (what survives ingest), allocated blocks,
    and pymalloc's arenas (1 MiB each, kept while any object in them lives) from sys._debugmallocstats."""
    import gc
    import tempfile
    from collections import Counter

    gc.collect()
    by_type = Counter(type(o).__name__ for o in gc.get_objects())
    stats: dict[str, int] = {}
    with tempfile.TemporaryFile("w+") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        for line in sink:
            key, _, value = line.partition("=")
            key = key.strip().lstrip("# ")
            if key in _MALLOC_STATS:
                stats[key] = int(value.strip().replace(",", ""))
            elif key.endswith("unused pools * 16384 bytes"):
                stats["unused pools"] = int(key.split()[0])
    report = {"allocated_blocks": sys.getallocatedblocks(), "pymalloc": stats, "modules": sorted(sys.modules),
              "objects_by_type": by_type.most_common(30)}
    wanted = os.environ.get("MEMORY_PROBE_HELD_BY", "")
    if wanted:  # who keeps objects of this type alive: referrer chains up from one of them
        report["held_by"] = _held_by(next((o for o in gc.get_objects() if _type_name(o, qualified="." in wanted) == wanted),
                                          None))
    return report


def _type_name(obj: Any, *, qualified: bool) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}" if qualified else kind.__name__


def _held_by(obj: Any, depth: int = 8) -> list[str]:
    """Referrer chains of `obj`, `depth` levels up, as lines: each referrer's type and, for a dict,
    the key that holds the object below it (frames, iterators and the probe's own lists skipped)."""
    import gc
    import types

    lines: list[str] = []
    seen: set[int] = set()

    def describe(ref: Any, held: Any) -> str:
        text = type(ref).__name__
        if isinstance(ref, dict):
            keys = [repr(k)[:60] for k, v in ref.items() if v is held][:3]
            text += f"[{', '.join(keys)}] (keys {', '.join(repr(k)[:40] for k in list(ref)[:4])})"
        elif isinstance(ref, tuple | list):
            text += f" of {len(ref)}"
        elif isinstance(ref, types.FunctionType | types.MethodType | types.CellType):
            text += f" {getattr(ref, '__qualname__', '')}"
        return text

    def walk(o: Any, level: int) -> None:
        if level > depth or id(o) in seen or len(lines) > 300:
            return
        seen.add(id(o))
        for ref in gc.get_referrers(o):
            if isinstance(ref, types.FrameType) or type(ref).__name__.endswith("iterator") or \
                    (isinstance(ref, list) and len(ref) > 50_000) or ref is lines:
                continue
            lines.append("  " * level + describe(ref, o))
            walk(ref, level + 1)

    if obj is not None:
        lines.append(type(obj).__name__)
        walk(obj, 1)
    return lines


def _dump(out: str) -> None:
    report: dict[str, Any] = {
        "rss_kb": _rss_kb(),
        "imports_kb": dict(sorted(_by_package.items(), key=lambda kv: -kv[1])),
        "first_import_s": _first_seen,
    }
    report.update(_heap())
    import tracemalloc

    if tracemalloc.is_tracing():
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics("filename")
        report["tracemalloc_total_kb"] = round(sum(s.size for s in stats) / 1024)
        report["tracemalloc_by_file_kb"] = [
            [stat.traceback[0].filename, round(stat.size / 1024), stat.count] for stat in stats[:40]
        ]
        if _previous:
            growth = snapshot.compare_to(_previous[-1], "filename")
            report["tracemalloc_growth_by_file_kb"] = [
                [diff.traceback[0].filename, round(diff.size_diff / 1024), diff.count_diff] for diff in growth[:40]
            ]
        _previous[:] = [snapshot]
    script = os.environ.get("MEMORY_PROBE_RUN", "")
    if script:  # a throw-away diagnosis inside the daemon (what it prints is kept in the report)
        import contextlib
        import io

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            try:
                runpy.run_path(script, run_name="__probe__")
            except Exception as exc:  # a broken diagnosis must not kill the daemon
                print(f"{script} failed: {exc!r}")
        report["run"] = printed.getvalue().splitlines()
    tmp = f"{out}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    os.replace(tmp, out)


def main() -> None:
    out, separator, *args = sys.argv[1:]
    if separator != "--":  # not an assert: bench/memory.py runs this under -OO
        raise SystemExit("usage: memory_probe.py OUT.json -- run ARGS...")
    builtins.__import__ = _traced_import
    signal.signal(signal.SIGUSR1, lambda *_: _dump(out))
    sys.argv = ["monitor", *args]
    sys.path[0] = os.getcwd()  # as `python -m monitor` from the repository root, not bench/
    runpy.run_module("monitor", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
