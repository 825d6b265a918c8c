"""Throughput: raw VADER, triage alone and the whole ingest pipeline, on the same texts.

    python bench/throughput.py --n 20000
    python bench/throughput.py --n 20000 --db postgresql://user@host/db   # an empty database
    python bench/throughput.py --n 2000 --profile /tmp/pipeline.html   # with pyinstrument installed

Three rates from one run over the same mentions in the same pages of `--batch`: raw VADER
(`polarity_scores` per text) and `triage_many` alone (language, sentiment, complaint), page by page
in turn, and what a poll does, `pipeline.ingest` per page (dedup, triage, rules.yaml, cases, outbox
rows, cursor) into a fresh SQLite file (or `--db`).  All are timed after warm-up (lexicons,
models, analyser construction are not counted) and triage's per-word caches are emptied before
the triage and the pipeline runs, so neither inherits the other's.  Rates are per wall second
and per CPU second of this process (the CPU figures hold on a busy, shared machine).  Targets
(issue #18): pipeline >= 0.5 x triage, triage >= 0.25 x raw VADER.  On SQLite it also gives the
floor of the database's part: the rows the run stored, inserted again with bare sqlite3
(`sqlite_floor_cpu_us`).  The last line printed is
one JSON object.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from common import RULES, Stream, emit, machine, stage_timer, to_new_mention


def _empty_triage_caches() -> None:
    """Forget the per-word work triage caches, so a timed run starts as a fresh daemon would."""
    from monitor.triage import complaint as triage_complaint

    triage_complaint._word_grams.cache_clear()
    model = triage_complaint.load_model()
    for linear in (model.ngrams, model.negative.ngrams if model.negative else None):
        if linear is not None:
            linear._word_cache.clear()


def vader_and_triage_rates(mentions: list, *, batch: int) -> tuple[float, float, float, float]:
    """(VADER texts per wall second, per CPU second, triage_many's the same) over the pages ingest would
    triage: each page by raw VADER (`polarity_scores` per text), then by `triage_many`, in turn, so a
    machine whose load changes during the run slows both alike (one after the other, a neighbour's job
    that started between them moved the ratio by a third)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from monitor.rules import load_rules
    from monitor.triage import triage_many, warm_up

    analyzer = SentimentIntensityAnalyzer()
    analyzer.polarity_scores("warm up")
    languages = list(load_rules(RULES).brand.languages)
    warm_up()
    _empty_triage_caches()
    wall = {"vader": 0.0, "triage": 0.0}
    cpu = {"vader": 0.0, "triage": 0.0}
    for start in range(0, len(mentions), batch):
        page = mentions[start:start + batch]
        texts = [m.text for m in page]
        began, used = time.perf_counter(), time.process_time()
        for text in texts:
            analyzer.polarity_scores(text)
        wall["vader"] += time.perf_counter() - began
        cpu["vader"] += time.process_time() - used
        began, used = time.perf_counter(), time.process_time()
        triage_many(texts, lang_hints=[m.lang_hint for m in page], languages=languages,
                    explain=False)  # as pipeline.ingest calls it: no signals (only `explain` shows them)
        wall["triage"] += time.perf_counter() - began
        cpu["triage"] += time.process_time() - used
    n = len(mentions)
    return n / wall["vader"], n / cpu["vader"], n / wall["triage"], n / cpu["triage"]


# inside other steps: not added again for "the rest"
_NESTED = ("ORM flush", "  of which acknowledgement plans")


def _breakdown() -> dict[str, float]:
    """Wrap the ingest's steps to add up the CPU seconds each takes (`--breakdown`).  The ORM writes
    its pending cases and events when the first statement after them runs (the outbox rows' insert),
    so "ORM flush" is measured as the session's flush, wherever it happens."""
    from sqlalchemy.orm import Session

    from monitor.cases import acknowledge, pipeline
    from monitor.delivery import outbox

    spent: dict[str, float] = {}

    timed = stage_timer(spent)

    timed(pipeline, "_new_only", "dedup query")
    timed(pipeline, "triage_many", "triage")
    timed(pipeline, "evaluate", "rules")
    timed(pipeline, "_insert_mentions", "mention insert")
    timed(pipeline._CaseBuilder, "_load_cases", "case look-up")
    timed(pipeline._CaseBuilder, "_load_parents", "page look-ups (replies, hand-offs, groups)")
    timed(pipeline._CaseBuilder, "_load_page_context", "page look-ups (replies, hand-offs, groups)")
    timed(pipeline._CaseBuilder, "_load_handed_off", "page look-ups (replies, hand-offs, groups)")
    timed(pipeline._CaseBuilder, "_load_groups", "page look-ups (replies, hand-offs, groups)")
    timed(acknowledge, "prefetch_recent_acks", "cooldown look-up (+ the plans' checks)")
    timed(pipeline._CaseBuilder, "_one", "cases + outbox in memory")
    timed(acknowledge, "plan", "  of which acknowledgement plans")
    timed(pipeline._CaseBuilder, "_insert_opened", "case insert (+ ORM flush)")
    timed(pipeline._CaseBuilder, "_write_cases", "case insert + updates")
    timed(outbox, "flush_batch", "outbox + events insert (+ ORM flush)")
    timed(pipeline._CaseBuilder, "_link_mentions", "mention case ids")
    timed(Session, "flush", "ORM flush")
    timed(Session, "commit", "commit (+ ORM flush)")
    timed(pipeline, "set_cursor", "cursor")
    timed(pipeline, "reserve_ids", "case ids")
    return spent


def pipeline_rate(mentions: list, *, batch: int, db_url: str, profile: str = "",
                  breakdown: dict[str, float] | None = None) -> tuple[float, float, dict]:
    """(mentions per wall second, per CPU second, what ingest reported)."""
    from connectors.platforms import FACEBOOK, X
    from monitor.cases import pipeline
    from monitor.cases.pipeline import ReplyPolicy
    from monitor.rules import load_rules
    from monitor.store import create_schema, make_engine
    from monitor.triage import warm_up

    ruleset = load_rules(RULES)
    engine = make_engine(db_url)
    create_schema(engine)
    warm_up()
    _empty_triage_caches()
    policies = {"x": ReplyPolicy(platform=X), "facebook": ReplyPolicy(platform=FACEBOOK)}
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
                                 policies=policies, triage_fn=pipeline.triage_many)
        for key in totals:
            totals[key] += getattr(result, key)
    elapsed, cpu_used = time.perf_counter() - began, time.process_time() - cpu
    if profiler is not None:
        profiler.stop()
        Path(profile).write_text(profiler.output_html(), encoding="utf-8")
        print(profiler.output_text(unicode=True, color=False, show_all=False)[:6000])
    engine.dispose()
    return len(mentions) / elapsed, len(mentions) / cpu_used, totals


def sqlite_floor(stored: Path, *, batch: int) -> float:
    """CPU µs a mention that SQLite itself needs to store what the pipeline stored: the rows of `stored`
    (mentions, cases, outbox rows, events) inserted again with the bare sqlite3 module into an empty
    database of the same schema and pragmas, as tuples, one executemany per table and page of `batch`
    mentions, one transaction a page (the other tables' rows shared out over the pages in id order).  No
    updates, look-ups or Python logic: the lower bound of the database's part of a mention."""
    import sqlite3

    from monitor.store import _sqlite_pragmas, create_schema, make_engine

    empty = stored.with_name("floor.db")
    engine = make_engine(f"sqlite:///{empty}")
    create_schema(engine)
    engine.dispose()
    tables = ("mention", "case", "outbox", "event")
    with sqlite3.connect(stored) as source:
        read = {t: ([c[1] for c in source.execute(f'pragma table_info("{t}")')],
                    source.execute(f'select * from "{t}" order by id').fetchall()) for t in tables}
    target = sqlite3.connect(empty)
    _sqlite_pragmas(target, None)  # the daemon's own connection settings (WAL, synchronous=NORMAL, autocommit)
    mentions = len(read["mention"][1])
    pages = max(1, -(-mentions // batch))
    statements = {t: f'insert into "{t}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)}) '
                     f'values ({", ".join("?" * len(cols))})' for t, (cols, _) in read.items()}
    cpu = time.process_time()
    for page in range(pages):
        target.execute("begin immediate")
        for t, (_, rows) in read.items():
            share = rows[len(rows) * page // pages:len(rows) * (page + 1) // pages]
            if share:
                target.executemany(statements[t], share)
        target.execute("commit")
    spent = time.process_time() - cpu
    target.close()
    return spent / max(mentions, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="mentions (default 20000)")
    parser.add_argument("--batch", type=int, default=100, help="mentions per ingest call, as a poll page")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", default="", help="write a pyinstrument HTML profile of the pipeline here")
    parser.add_argument("--breakdown", action="store_true",
                        help="also print the CPU µs per mention of each ingest step (adds a little overhead)")
    parser.add_argument("--db", default="", help="database URL (default: a fresh SQLite file); must be empty")
    args = parser.parse_args()

    stream = Stream(seed=args.seed, start=datetime(2026, 11, 24, 7, 0, tzinfo=UTC))
    records = [t.record for t in stream.steady(args.n, rate_per_s=2.0)]
    mentions = [to_new_mention(r) for r in records]
    vader, vader_cpu, triage, triage_cpu = vader_and_triage_rates(mentions, batch=args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        spent = _breakdown() if args.breakdown else None
        rate, rate_cpu, totals = pipeline_rate(mentions, batch=args.batch,
                                               db_url=args.db or f"sqlite:///{Path(tmp) / 'bench.db'}",
                                               profile=args.profile)
        floor = None if args.db else sqlite_floor(Path(tmp) / "bench.db", batch=args.batch)
    if spent is not None:
        whole = 1e6 / rate_cpu
        print(f"CPU µs per mention, {whole:.0f} in all (nested: the ORM flush, the plans):")
        for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"  {label:44} {seconds / args.n * 1e6:7.1f}")
        top = sum(seconds for label, seconds in spent.items() if label not in _NESTED)
        print(f"  {'the rest (sessions, transactions, loop)':44} {whole - top / args.n * 1e6:7.1f}")
    database = "PostgreSQL" if args.db.startswith("postgres") else "SQLite file"
    print(f"raw VADER        {vader:10.0f} texts/s     ({vader_cpu:.0f} per CPU second)")
    print(f"triage_many      {triage:10.0f} texts/s     ({triage_cpu:.0f} per CPU second)")
    print(f"pipeline.ingest  {rate:10.0f} mentions/s  ({rate_cpu:.0f} per CPU second; batches of {args.batch}, "
          f"{database})")
    print(f"pipeline / triage {rate_cpu / triage_cpu:.3f} (target >= 0.5), triage / VADER "
          f"{triage_cpu / vader_cpu:.3f} (target >= 0.25), per CPU second")
    if floor is not None:
        print(f"SQLite's own floor {floor:.1f} CPU µs a mention (the same rows, bare sqlite3 inserts); the "
              f"pipeline's non-triage part {1e6 / rate_cpu - 1e6 / triage_cpu:.1f}")
    print(f"stored {totals['stored']}, cases {totals['cases_opened']}, alerts {totals['alerts']}, "
          f"follow-ups {totals['attached']}, dropped {totals['dropped']}, acks {totals['acks_queued']}")
    emit({"pipeline_per_s": round(rate, 1), "triage_per_s": round(triage, 1), "vader_per_s": round(vader, 1),
          "ratio": round(rate / vader, 3),
          "pipeline_per_cpu_s": round(rate_cpu, 1), "triage_per_cpu_s": round(triage_cpu, 1),
          "vader_per_cpu_s": round(vader_cpu, 1), "ratio_cpu": round(rate_cpu / vader_cpu, 4),
          "pipeline_over_triage": round(rate / triage, 3), "triage_over_vader": round(triage / vader, 3),
          "pipeline_over_triage_cpu": round(rate_cpu / triage_cpu, 3),
          "triage_over_vader_cpu": round(triage_cpu / vader_cpu, 3),
          "sqlite_floor_cpu_us": None if floor is None else round(floor, 1),
          "database": database, "n": args.n, "batch": args.batch, **totals, "machine": machine()})


if __name__ == "__main__":
    main()
