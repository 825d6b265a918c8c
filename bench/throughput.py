"""Throughput: raw VADER alone vs the whole ingest pipeline, on the same texts.

    python bench/throughput.py --n 20000
    python bench/throughput.py --n 2000 --profile /tmp/pipeline.html   # with pyinstrument installed

The pipeline run is what a poll does: `pipeline.ingest` of pages of 100 mentions (dedup, triage,
rules.yaml, cases, outbox rows, cursor) into a fresh SQLite file.  Both sides are timed after
warm-up (lexicons, models, analyser construction are not counted), in wall-clock and in CPU
seconds of this process (the CPU figures hold on a busy, shared machine).  Target: ratio >= 0.5.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import RULES, Stream, emit, machine, to_new_mention


def vader_rate(texts: list[str]) -> tuple[float, float]:
    """(texts per wall second, texts per CPU second)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.polarity_scores("warm up")
    began, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        analyzer.polarity_scores(text)
    return len(texts) / (time.perf_counter() - began), len(texts) / (time.process_time() - cpu)


def pipeline_rate(mentions: list, *, batch: int, db_path: Path, profile: str = "") -> tuple[float, float, dict]:
    """(mentions per wall second, per CPU second, what ingest reported)."""
    from connectors.facebook import FacebookSource
    from connectors.x import XSource
    from monitor.cases import pipeline
    from monitor.rules import load_rules
    from monitor.runtime.daemon import policy_for
    from monitor.store import create_schema, make_engine
    from monitor.triage import warm_up

    ruleset = load_rules(RULES)
    engine = make_engine(f"sqlite:///{db_path}")
    create_schema(engine)
    warm_up()
    policies = {"x": policy_for(XSource), "facebook": policy_for(FacebookSource)}
    totals = {"stored": 0, "cases_opened": 0, "alerts": 0, "attached": 0, "dropped": 0, "acks_queued": 0}
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    began, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(mentions), batch):
        page = mentions[start:start + batch]
        now = max(m.created_at for m in page)
        result = pipeline.ingest(engine, source="bench", batch=page, cursor=str(start), ruleset=ruleset, now=now,
                                 policies=policies)
        for key in totals:
            totals[key] += getattr(result, key)
    elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu
    if profiler is not None:
        profiler.stop()
        Path(profile).write_text(profiler.output_html(), encoding="utf-8")
        print(profiler.output_text(unicode=True, color=False, show_all=False)[:6000])
    engine.dispose()
    return len(mentions) / elapsed, len(mentions) / cpu_used, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="mentions (default 20000)")
    parser.add_argument("--batch", type=int, default=100, help="mentions per ingest call, as a poll page")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", default="", help="write a pyinstrument HTML profile of the pipeline here")
    args = parser.parse_args()

    stream = Stream(seed=args.seed, start=datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    records = [t.record for t in stream.steady(args.n, rate_per_s=2.0)]
    mentions = [to_new_mention(r) for r in records]
    texts = [m.text for m in mentions]
    vader, vader_cpu = vader_rate(texts)
    with tempfile.TemporaryDirectory() as tmp:
        rate, rate_cpu, totals = pipeline_rate(mentions, batch=args.batch, db_path=Path(tmp) / "bench.db",
                                     profile=args.profile)
    print(f"raw VADER        {vader:10.0f} texts/s     ({vader_cpu:.0f} per CPU second)")
    print(f"pipeline.ingest  {rate:10.0f} mentions/s  ({rate_cpu:.0f} per CPU second; batches of {args.batch}, "
          "SQLite file)")
    print(f"stored {totals['stored']}, cases {totals['cases_opened']}, alerts {totals['alerts']}, "
          f"follow-ups {totals['attached']}, dropped {totals['dropped']}, acks {totals['acks_queued']}")
    emit({"pipeline_per_s": round(rate, 1), "vader_per_s": round(vader, 1), "ratio": round(rate / vader, 3),
          "pipeline_per_cpu_s": round(rate_cpu, 1), "vader_per_cpu_s": round(vader_cpu, 1),
          "ratio_cpu": round(rate_cpu / vader_cpu, 4),
          "n": args.n, "batch": args.batch, **totals, "machine": machine()})


if __name__ == "__main__":
    main()
