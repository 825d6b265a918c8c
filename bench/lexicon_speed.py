"""Benchmark sentiment scoring: raw VADER, triage_many and the lexicon scorer, in one process.

    python bench/lexicon_speed.py [--repeat 3] [--copies 3]

On the devset texts (data/devset/, six languages): CPU texts per second of raw VADER's
`polarity_scores`, of `triage_many` (the target is >= 0.25x raw VADER), and of
`lexicon_sentiment` alone per lexicon language; best of `--repeat` rounds, so a busy
machine disturbs the figures less. Run it on two checkouts one after the other to compare
a change. The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LANGUAGES = ("en", "da", "hr", "ro", "id", "zh")


def _rate(count: int, run: Callable[[], object]) -> float:
    began = time.process_time()
    run()
    return count / max(time.process_time() - began, 1e-9)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of them is reported")
    parser.add_argument("--copies", type=int, default=3, help="how many times the devset texts are scored a round")
    args = parser.parse_args()

    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from monitor.triage import triage_many, warm_up
    from monitor.triage.evaluate import read_devset
    from monitor.triage.sentiment import lexicon_sentiment

    rows = read_devset() * args.copies
    texts = [row.text for row in rows]
    by_lang = {lang: [r.text for r in rows if r.lang == lang] for lang in LANGUAGES if lang != "en"}
    warm_up()
    for lang, items in by_lang.items():  # load every lexicon (and jieba) before timing
        lexicon_sentiment(items[0], lang=lang)
    vader = SentimentIntensityAnalyzer()
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        rounds = {
            "vader": _rate(len(texts), lambda: [vader.polarity_scores(t) for t in texts]),
            "triage": _rate(len(texts), lambda: triage_many(texts, languages=LANGUAGES)),
        }
        for lang, items in by_lang.items():
            rounds[f"lexicon_{lang}"] = _rate(
                len(items), lambda items=items, lang=lang: [lexicon_sentiment(t, lang=lang) for t in items]
            )
        for key, value in rounds.items():
            best[key] = max(best.get(key, 0.0), value)
    result = {key: round(value) for key, value in best.items()}
    result["triage_to_vader"] = round(best["triage"] / best["vader"], 3)
    print(
        f"raw VADER {result['vader']} texts/CPU-s, triage {result['triage']} "
        f"({result['triage_to_vader']}x VADER); lexicon scorer: "
        + ", ".join(f"{lang} {result[f'lexicon_{lang}']}" for lang in by_lang)
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
