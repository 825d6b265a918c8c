"""Benchmark triage: texts/s on one core (triage_many), start time, peak RSS.

    python bench/triage_speed.py                 # devset texts, 6 configured languages
    python bench/triage_speed.py --seconds 10 --cold
    python bench/triage_speed.py --stages --n 5000   # µs per post in each stage, on throughput.py's texts
    python bench/triage_speed.py --stages --langid-python   # the same without the C language identifier

    /tmp/lingua-venv/bin/python bench/triage_speed.py --compare-langid   # needs py3langid + lingua

Start time = fresh interpreter until the first Score is returned (imports, lexicons,
langid model, complaint model), measured in a child process. `--cold` first deletes
the on-disk langid cache, to show the first-ever start. Triage is timed as the pipeline
calls it (`explain=False`: no signals; `--explain` adds them, as `mention-monitor explain`
shows them), raw VADER on the same texts in the same run, batch by batch in turn, so a
busy machine slows both alike. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LANGUAGES = ("en", "da", "hr", "ro", "id", "zh")
_CHILD = """
import time
t0 = time.perf_counter()
from monitor.triage import triage
triage("my order never arrived, 3 weeks and no refund. worst service ever!!! 😡", languages={langs!r})
print(time.perf_counter() - t0)
"""


def start_time(*, cold: bool) -> float:
    if cold:
        from monitor.triage.lang import _cache_dir

        shutil.rmtree(_cache_dir(), ignore_errors=True)
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(langs=LANGUAGES)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - began
    print(f"start: {wall:.2f} s wall incl. interpreter ({float(out.stdout.strip()):.2f} s import+first text)")
    return wall


_LANGID_CHILD = r"""
import csv, json, resource, sys, time
texts, gold = [], []
for name in ("mentions.tsv", "holdout.tsv"):
    with open(f"data/devset/{name}", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="	", quoting=csv.QUOTE_NONE):
            texts.append(row["text"]); gold.append(row["lang"])
six = ["en", "da", "hr", "ro", "id", "zh"]
began = time.perf_counter()
if sys.argv[1] == "py3langid":
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(six)
    detect = lambda t: ident.classify(t)[0]
else:
    from lingua import Language, LanguageDetectorBuilder
    builder = LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.DANISH, Language.CROATIAN,
                                                     Language.ROMANIAN, Language.INDONESIAN, Language.CHINESE)
    if sys.argv[1] == "lingua-low":
        builder = builder.with_low_accuracy_mode()
    det = builder.with_preloaded_language_models().build()
    def detect(t):
        found = det.detect_language_of(t)
        return found.iso_code_639_1.name.lower() if found else "und"
load = time.perf_counter() - began
detect("warm up")
began = time.perf_counter()
got = [detect(t) for t in texts]
per = (time.perf_counter() - began) / len(texts)
wrong = [(g, p, t) for g, p, t in zip(gold, got, texts) if g != p]
print(json.dumps({"detector": sys.argv[1], "load_s": round(load, 2), "us_per_text": round(per * 1e6),
                  "accuracy": round(1 - len(wrong) / len(texts), 4), "n": len(texts),
                  "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "wrong": wrong[:8]}, ensure_ascii=False))
"""


def compare_langid() -> int:
    """py3langid vs lingua on our devset + holdout texts (gold = the row's language)."""
    for detector in ("py3langid", "lingua", "lingua-low"):
        done = subprocess.run(
            [sys.executable, "-c", _LANGID_CHILD, detector],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        print(done.stdout.strip() or done.stderr.strip().splitlines()[-1])
    return 0


def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.polarity_scores("warm up")
    return analyzer


# The stages of `monitor.triage.triage_with`, by the names it calls them under.
_STAGES = {
    "clean": "clean (URLs, handles)",
    "detect": "language id",
    "folded_body": "fold (lower case, diacritics)",
    "detect_many": "language id (the batch at once)",
    "document_sentiment": "sentiment",
    "cue_hits": "complaint cues",
    "is_question": "question",
}


def stages(*, n: int, explain: bool) -> dict[str, float]:
    """CPU µs per post in each stage of triage over throughput.py's first `n` texts (its default
    rules.yaml's six languages), raw VADER on the same batches in turn; prints a table."""
    from datetime import UTC, datetime

    import monitor.triage as triage_module
    from monitor.triage.complaint import ComplaintModel

    sys.path.insert(0, str(ROOT / "bench"))
    from common import Stream, stage_timer, to_new_mention

    stream = Stream(seed=7, start=datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    mentions = [to_new_mention(t.record) for t in stream.steady(n, rate_per_s=2.0)]
    spent: dict[str, float] = {}

    timed = stage_timer(spent)

    triage_module.warm_up()
    analyzer = _vader()
    # An older tree (before explain=False) is timed with its signals, as its pipeline ran it.
    options = {"explain": explain} if "explain" in inspect.signature(triage_module.triage_many).parameters else {}
    triage_module.triage_many([m.text for m in mentions], lang_hints=[m.lang_hint for m in mentions],
                              languages=LANGUAGES, **options)  # per-word caches filled, as in a daemon
    for name, label in _STAGES.items():
        if hasattr(triage_module, name):
            timed(triage_module, name, label)
    timed(ComplaintModel, "probability", "complaint model (both n-gram models, stacker)")
    timed(ComplaintModel, "explain", "complaint explanation (signals)")
    whole = vader = 0.0
    for start in range(0, n, 100):
        page = mentions[start:start + 100]
        began = time.process_time()
        for mention in page:
            analyzer.polarity_scores(mention.text)
        vader += time.process_time() - began
        began = time.process_time()
        triage_module.triage_many([m.text for m in page], lang_hints=[m.lang_hint for m in page],
                                  languages=LANGUAGES, **options)
        whole += time.process_time() - began
    per = {label: seconds / n * 1e6 for label, seconds in spent.items()}
    per["Score, signals, glue (the rest)"] = whole / n * 1e6 - sum(per.values())
    print(f"CPU µs per post over {n} posts of bench/throughput.py ({options or 'explain: always'}; "
          "timing adds ~1 µs a stage):")
    for label, value in per.items():
        print(f"  {label:48} {value:6.1f}")
    print(f"  {'triage in all':48} {whole / n * 1e6:6.1f}")
    print(f"  {'raw VADER, same texts':48} {vader / n * 1e6:6.1f}")
    print(f"triage / VADER rate {vader / whole:.3f} (target >= 0.25); load average {os.getloadavg()[0]:.2f}")
    return {"triage_us": round(whole / n * 1e6, 1), "vader_us": round(vader / n * 1e6, 1),
            "triage_over_vader": round(vader / whole, 3), **{k: round(v, 1) for k, v in per.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run the throughput loop")
    parser.add_argument("--cold", action="store_true", help="delete the langid cache before timing start-up")
    parser.add_argument(
        "--compare-langid", action="store_true", help="py3langid vs lingua (needs lingua installed)"
    )
    parser.add_argument("--explain", action="store_true", help="time triage with its signals (as `explain`)")
    parser.add_argument("--stages", action="store_true", help="CPU µs per post in each stage of triage")
    parser.add_argument("--n", type=int, default=5000, help="posts for --stages (default 5000)")
    parser.add_argument("--langid-python", action="store_true",
                        help="language identification in Python, as where monitor/triage/_langid_walk.c is not built")
    args = parser.parse_args()
    if args.langid_python:
        sys.modules["monitor.triage._langid_walk"] = None  # its import fails: langid_model's fallback
    if args.compare_langid:
        return compare_langid()
    if args.stages:
        print(json.dumps({**stages(n=args.n, explain=args.explain), "load_avg": round(os.getloadavg()[0], 2)},
                         ensure_ascii=False))
        return 0

    start = start_time(cold=args.cold)

    from monitor.triage import triage_many, warm_up
    from monitor.triage.evaluate import read_devset

    texts = [row.text for row in read_devset()]
    warm_up()
    analyzer = _vader()
    done, vader_cpu, triage_cpu, triage_wall, began = 0, 0.0, 0.0, 0.0, time.perf_counter()
    while time.perf_counter() - began < args.seconds:
        cpu_began = time.process_time()
        for text in texts:
            analyzer.polarity_scores(text)
        vader_cpu += time.process_time() - cpu_began
        cpu_began, wall_began = time.process_time(), time.perf_counter()
        triage_many(texts, languages=LANGUAGES, explain=args.explain)
        triage_cpu += time.process_time() - cpu_began
        triage_wall += time.perf_counter() - wall_began
        done += len(texts)
    cpu_rate = done / triage_cpu
    vader_rate = done / vader_cpu
    rate = done / triage_wall
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    mean_len = sum(map(len, texts)) / len(texts)
    print(
        f"throughput: {rate:.0f} texts/s wall, {cpu_rate:.0f} per CPU-second, over {done} texts "
        f"(mean {mean_len:.0f} chars), one thread; load average now {os.getloadavg()[0]:.1f}"
    )
    print(f"raw VADER on the same texts: {vader_rate:.0f} per CPU-second; triage / VADER {cpu_rate / vader_rate:.3f} "
          f"(target >= 0.25, explain={args.explain})")
    print(f"peak RSS: {rss_mb:.0f} MB")
    result = {
        "texts_per_s": round(rate),
        "texts_per_cpu_s": round(cpu_rate),
        "vader_per_cpu_s": round(vader_rate),
        "triage_over_vader_cpu": round(cpu_rate / vader_rate, 3),
        "explain": args.explain,
        "load_avg": round(os.getloadavg()[0], 2),
        "start_s": round(start, 3),
        "rss_mb": round(rss_mb, 1),
        "texts": done,
        "mean_chars": round(mean_len, 1),
        "targets_met": rate >= 3000 and start < 2.0 and rss_mb < 300,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
