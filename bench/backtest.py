"""Backtest speed: `mention-monitor backtest` over 100,000 stored mentions (target: under a minute).

    python bench/backtest.py --n 100000

Builds a SQLite file of `n` stored mentions over 30 days (texts from the shared synthetic stream,
triaged once with the shipped triage, stored as the pipeline stores them; ingest itself is not
timed here, bench/throughput.py measures it), then times the command a person runs: both rule
sets (the shipped rules.yaml and an edit of it) over all of them, read-only, JSON out.  Wall and
CPU seconds of this process are reported (CPU holds on a busy, shared machine).  The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import RULES, Stream, emit, machine, to_new_mention

EDITS = (  # what a community manager might try: the urgent reply waits for approval, possible goes to VIP
    ("acknowledge: {template: move_to_dm, private_template: dm_opening, mode: auto}",
     "acknowledge: {template: move_to_dm, private_template: dm_opening, mode: approve}"),
    ("alert: {channel: alerts, severity: normal, sla: 1h, business_hours: false, group_by: topic}",
     "alert: {channel: vip, severity: normal, sla: 4h, business_hours: false, group_by: topic}"),
)


def build_history(db_path: Path, *, n: int, unique: int, end: datetime, seed: int) -> None:
    """`n` Mention rows over the 30 days before `end`; `unique` distinct texts triaged, reused round-robin."""
    import sqlalchemy as sa

    from monitor.model import Mention
    from monitor.rules import load_rules
    from monitor.store import create_schema, make_engine
    from monitor.triage import triage_many

    ruleset = load_rules(RULES)
    start = end - timedelta(days=30)
    stream = Stream(seed=seed, start=start)
    spacing = 30 * 86400 / n
    records = [t.record for t in stream.steady(n, rate_per_s=1 / spacing)]
    pool = [to_new_mention(r) for r in records[:unique]]
    scores = triage_many([m.text for m in pool], lang_hints=[m.lang_hint for m in pool],
                         languages=list(ruleset.brand.languages))
    engine = make_engine(f"sqlite:///{db_path}")
    create_schema(engine)
    rows = []
    for i, record in enumerate(records):
        m, s = pool[i % unique], scores[i % unique]
        rows.append(dict(
            platform=record["platform"], kind=m.kind, source=f"{record['platform']}-{m.kind}",
            external_id=record["external_id"], conversation_id=record["conversation_id"],
            author_id=str(record["author"]["id"]), author_handle=record["author"].get("handle", ""),
            author_name=record["author"].get("name", ""), author_followers=record["author"].get("followers", 0),
            author_verified=record["author"].get("verified", False), text=m.text, url="",
            mentions_brand=m.mentions_brand, from_brand=m.from_brand,
            created_at=datetime.fromisoformat(record["created_at"]), fetched_at=end, raw={}, lang=s.lang,
            sentiment=s.sentiment, complaint=s.complaint, categories=list(s.categories), rule=""))
    with engine.begin() as conn:
        for begin in range(0, len(rows), 5000):
            conn.execute(sa.insert(Mention.__table__), rows[begin:begin + 5000])
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="stored mentions (default 100000)")
    parser.add_argument("--unique", type=int, default=20_000, help="distinct texts triaged (default 20000)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    from monitor.cli import main as cli

    end = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.db"
        build_history(db, n=args.n, unique=min(args.unique, args.n), end=end, seed=args.seed)
        edited = Path(tmp) / "rules-new.yaml"
        text = RULES.read_text(encoding="utf-8")
        for old, new in EDITS:
            text = text.replace(old, new)
        edited.write_text(text, encoding="utf-8")
        out = io.StringIO()
        began, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(out):
            cli(["backtest", "--rules", str(edited), "--against", str(RULES), "--db", f"sqlite:///{db}",
                 "--since", "30d", "--until", end.isoformat(), "--format", "json"])
        wall, cpu_used = time.perf_counter() - began, time.process_time() - cpu
    result = json.loads(out.getvalue())
    print(f"backtest of {result['mentions']:,} stored mentions: {wall:.1f} s wall, {cpu_used:.1f} s CPU "
          f"({result['mentions'] / wall:,.0f} mentions/s); alerts {result['current']['alerts']} -> "
          f"{result['proposed']['alerts']}, automatic replies {result['current']['auto_replies']} -> "
          f"{result['proposed']['auto_replies']}")
    emit({"mentions": result["mentions"], "wall_s": round(wall, 2), "cpu_s": round(cpu_used, 2),
          "per_s": round(result["mentions"] / wall, 1), "target_s": 60, "machine": machine()})


if __name__ == "__main__":
    main()
