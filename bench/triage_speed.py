"""Benchmark triage: texts/s on one core (triage_many), start time, peak RSS.

    python bench/triage_speed.py                 # devset texts, 6 configured languages
    python bench/triage_speed.py --seconds 10 --cold

    /tmp/lingua-venv/bin/python bench/triage_speed.py --compare-langid   # needs py3langid + lingua

Start time = fresh interpreter until the first Score is returned (imports, lexicons,
langid model, complaint model), measured in a child process. `--cold` first deletes
the on-disk langid cache, to show the first-ever start. The last line printed is one
JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run the throughput loop")
    parser.add_argument("--cold", action="store_true", help="delete the langid cache before timing start-up")
    parser.add_argument(
        "--compare-langid", action="store_true", help="py3langid vs lingua (needs lingua installed)"
    )
    args = parser.parse_args()
    if args.compare_langid:
        return compare_langid()

    start = start_time(cold=args.cold)

    from monitor.triage import triage_many, warm_up
    from monitor.triage.evaluate import read_devset

    texts = [row.text for row in read_devset()]
    warm_up()
    done, began, cpu_began = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - began < args.seconds:
        triage_many(texts, languages=LANGUAGES)
        done += len(texts)
    elapsed = time.perf_counter() - began
    cpu_rate = done / (time.process_time() - cpu_began)
    rate = done / elapsed
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    mean_len = sum(map(len, texts)) / len(texts)
    print(
        f"throughput: {rate:.0f} texts/s wall, {cpu_rate:.0f} per CPU-second, over {done} texts "
        f"(mean {mean_len:.0f} chars), one thread; load average now {os.getloadavg()[0]:.1f}"
    )
    print(f"peak RSS: {rss_mb:.0f} MB")
    result = {
        "texts_per_s": round(rate),
        "texts_per_cpu_s": round(cpu_rate),
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
