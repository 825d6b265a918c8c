"""Memory step by step in one fresh process: VmRSS after each import the daemon makes, after loading
rules.yaml, after each triage model loads, after each language's first post, and after the trim an idle daemon does.

    python bench/memory_steps.py

Each step's growth is charged to that step (later steps may reuse what an earlier one loaded,
so the order is the daemon's: imports, then `triage.warm_up`'s parts, then posts).  Run from the
repository root; the cache directory is the daemon's ($MENTION_MONITOR_CACHE or ~/.cache), so run
the daemon (or this program) once first if the first start's cache build is not what you want to
see.  The last line printed is one JSON object.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # as the daemon runs: the repository root first, not bench/

IMPORTS = (
    "pydantic", "sqlalchemy", "sqlmodel", "monitor.model", "monitor.rules", "monitor.cli",
    "monitor.runtime.daemon", "monitor.runtime.wiring", "requests", "tweepy", "facebook", "slack_sdk",
    "slack_bolt", "werkzeug", "holidays", "monitor.triage",
)
POSTS = {
    "en": "my order never arrived and nobody answers",
    "da": "min pakke er stadig ikke kommet efter tre uger",
    "hr": "narudžba nije stigla, nitko ne odgovara",
    "ro": "comanda nu a ajuns si nimeni nu raspunde",
    "id": "pesanan saya belum sampai dan tidak ada yang membalas",
    "zh": "非常不好，快递三个星期还没到",
}
SIX = tuple(POSTS)


def _status() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out


def main() -> None:
    rows: list[dict[str, object]] = []
    previous = _status()
    rows.append({"step": "python", "rss_mb": round(previous["VmRSS"], 1), "added_mb": 0.0, "file_mb": 0.0, "s": 0.0})

    def step(name: str, action: Callable[[], object]) -> None:
        nonlocal previous
        began = time.perf_counter()
        action()
        now = _status()
        rows.append({"step": name, "rss_mb": round(now["VmRSS"], 1),
                     "added_mb": round(now["VmRSS"] - previous["VmRSS"], 1),
                     "file_mb": round(now["RssFile"] - previous["RssFile"], 1),
                     "s": round(time.perf_counter() - began, 2)})
        previous = now

    for module in IMPORTS:
        step(f"import {module}", lambda module=module: importlib.import_module(module))
    from monitor.rules import load_rules

    step("load rules.yaml", lambda: load_rules(str(ROOT / "rules.yaml")))
    from monitor.triage import complaint, lang, sentiment, triage
    from monitor.triage.lexicon import cues, lexicon

    step("complaint model (complaint.json)", complaint.load_model)
    step("language model (mapped automaton)", lang.warm_up)
    step("VADER", sentiment._vader)
    for code in SIX:
        step(f"lexicon + cues {code}", lambda code=code: (code == "en" or lexicon(code), cues(code)))
    step("Chinese word table", sentiment._jieba)
    for code, text in POSTS.items():
        step(f"first post {code}", lambda text=text: triage(text, languages=SIX))
    from monitor.runtime.memory import trim_memory

    step("trim (as an idle daemon every 15 s)", trim_memory)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"numpy", "jieba", "py3langid", "matplotlib", "alembic",
                                                                "rich", "pkg_resources"})
    print(f"{'step':42} {'RSS':>7} {'added':>7} {'of it file pages':>17} {'time':>6}")
    for row in rows:
        print(f"{row['step']:42} {row['rss_mb']:7.1f} {row['added_mb']:+7.1f} {row['file_mb']:+17.1f} {row['s']:6.2f}")
    print(f"heavy packages loaded: {', '.join(loaded) or 'none'}")
    print(json.dumps({"steps": rows, "loaded": loaded}))


if __name__ == "__main__":
    main()
