"""Language identifiers compared on short posts in the six languages: accuracy, µs per post, RSS.

    python bench/langid_compare.py --xed /path/to/Helsinki-NLP/XED --python /tmp/langid-venv/bin/python

Detectors, each in a fresh child process (so its RSS is its own): `ours` (monitor.triage.lang.detect,
no platform hint, the six languages), `py3langid` (restricted to the six), and, where the child's
Python has them installed, `langid` (langid.py, restricted to the six), `pycld2`, `langdetect`
(seeded), `lingua` and `lingua-low` (both built for the six languages only, models preloaded).  Only detectors whose model ships inside their
wheel are considered: nothing may be downloaded at run time.

Texts: the devset's posts (data/devset/mentions.tsv and holdout.tsv, gold = the row's language)
and, with --xed, up to --per-language short lines (12-79 characters) of each language from a
local copy of XED's projections (CC BY 4.0; read at run time, never stored here).  RSS is
VmRSS after loading the model and classifying every text, minus VmRSS of the bare child (for
`ours`: of the child with the monitor package imported, which the daemon holds anyway; and also
after `trim_memory`, as the daemon's idle trim leaves it).  The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, emit, machine

SIX = ("en", "da", "hr", "ro", "id", "zh")
XED_FILES = {"en": "en", "da": "da", "hr": "hr", "ro": "ro", "id": "id", "zh": "cn"}
DETECTORS = ("ours", "py3langid", "langid", "pycld2", "langdetect", "lingua", "lingua-low")

_CHILD = r"""
import json, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
name, path = sys.argv[1], sys.argv[2]
if name == "ours":  # what the daemon holds anyway (the monitor package, SQLModel, pydantic) is not the model's
    import monitor.model, monitor.triage.lexicon
base = rss()
items = json.load(open(path, encoding="utf-8"))
six = ["en", "da", "hr", "ro", "id", "zh"]
began = time.perf_counter()
if name == "ours":
    from monitor.triage.lang import detect, warm_up
    warm_up()
    guess = lambda t: detect(t, languages=six)[0]
    def release():  # what the daemon's trim does every 15 s: the mapped model pages go back
        from monitor.runtime.memory import trim_memory
        trim_memory()
elif name == "py3langid":
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(six)
    guess = lambda t: ident.classify(t)[0]
elif name == "langid":
    from langid.langid import LanguageIdentifier, model
    ident = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    ident.set_languages(six)
    guess = lambda t: ident.classify(t)[0]
elif name == "pycld2":
    import pycld2
    def guess(t):
        code = pycld2.detect(t, bestEffort=True)[2][0][1]
        return {"zh-Hant": "zh", "un": "und"}.get(code, code.split("-")[0])
elif name == "langdetect":
    from langdetect import DetectorFactory, detect as ld
    from langdetect.lang_detect_exception import LangDetectException
    DetectorFactory.seed = 0
    def guess(t):
        try:
            code = ld(t)
        except LangDetectException:
            return "und"
        return code.split("-")[0]
else:
    from lingua import Language, LanguageDetectorBuilder
    builder = LanguageDetectorBuilder.from_languages(Language.ENGLISH, Language.DANISH, Language.CROATIAN,
                                                     Language.ROMANIAN, Language.INDONESIAN, Language.CHINESE)
    if name == "lingua-low":
        builder = builder.with_low_accuracy_mode()
    det = builder.with_preloaded_language_models().build()
    def guess(t):
        found = det.detect_language_of(t)
        return found.iso_code_639_1.name.lower() if found else "und"
guess("warm up")
load_s = time.perf_counter() - began
began, cpu = time.perf_counter(), time.process_time()
got = [guess(t) for t, _ in items]
cpu_per = (time.process_time() - cpu) / len(items)
per_lang = {}
for (t, gold), g in zip(items, got):
    right, total = per_lang.get(gold, (0, 0))
    per_lang[gold] = (right + (g == gold), total + 1)
print(json.dumps({"detector": name, "load_s": round(load_s, 2), "us_per_post_cpu": round(cpu_per * 1e6, 1),
                  "accuracy": round(sum(r for r, _ in per_lang.values()) / len(items), 4),
                  "per_language": {k: round(r / n, 3) for k, (r, n) in sorted(per_lang.items())},
                  "rss_model_mb": round(rss() - base, 1), "rss_mb": round(rss(), 1), "n": len(items),
                  **({"rss_model_after_release_mb": round((release() or rss()) - base, 1)} if name == "ours" else {})}))
"""


def devset() -> list[tuple[str, str]]:
    out = []
    for name in ("mentions.tsv", "holdout.tsv"):
        with (ROOT / "data" / "devset" / name).open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                if row["lang"] in SIX:
                    out.append((row["text"], row["lang"]))
    return out


def xed_lines(directory: Path, *, per_language: int, seed: int) -> list[tuple[str, str]]:
    """Short lines of each language from XED's projections (a git checkout or a plain copy)."""
    out = []
    for lang, stem in XED_FILES.items():
        relative = f"Projections/{stem}-projections.tsv"
        path = directory / relative
        if path.exists():
            text = path.read_text(encoding="utf-8")
        else:  # a bare mirror: read the file from git
            text = subprocess.run(["git", "-C", str(directory), "show", f"HEAD:{relative}"], capture_output=True,
                                  text=True, check=True).stdout
        lines = [line.split("\t")[0].strip() for line in text.splitlines()]
        short = [line for line in lines if 12 <= len(line) < 80]
        random.Random(seed).shuffle(short)
        out += [(line, lang) for line in short[:per_language]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xed", default="", help="a local copy of Helsinki-NLP/XED (or its git directory)")
    parser.add_argument("--per-language", type=int, default=300, help="XED lines per language")
    parser.add_argument("--python", default=sys.executable, help="the Python that has the other detectors")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    args = parser.parse_args()
    sets = {"devset": devset()}
    if args.xed:
        sets["xed_short"] = xed_lines(Path(args.xed), per_language=args.per_language, seed=args.seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for set_name, items in sets.items():
            path = Path(tmp) / f"{set_name}.json"
            path.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
            for detector in args.detectors.split(","):
                done = subprocess.run([args.python, "-c", _CHILD, detector, str(path)], cwd=ROOT, env=env,
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(f"{set_name:9} {detector:11} not run: {done.stderr.strip().splitlines()[-1]}")
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault(set_name, {})[detector] = result
                print(f"{set_name:9} {detector:11} accuracy {result['accuracy']:.3f} "
                      f"{result['per_language']}  {result['us_per_post_cpu']:7.1f} µs/post  "
                      f"model RSS {result['rss_model_mb']:6.1f} MB  load {result['load_s']} s"
                      + (f"  ({result['rss_model_after_release_mb']} MB after the idle trim)"
                         if "rss_model_after_release_mb" in result else ""))
    emit({"results": results, "machine": machine()})


if __name__ == "__main__":
    main()
