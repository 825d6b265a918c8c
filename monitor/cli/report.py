"""`mention-monitor report` (KPIs as tables, JSON, CSV, PNG) and `mention-monitor backfill` (fetch history).

Registered by monitor/cli/__init__.py through `register(subparsers)`.  Backfill reads each X and
Facebook source's history through the same connectors as the daemon and stores it through
monitor.cases.pipeline.ingest: the (platform, id) dedup makes a second run store nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import AuthFailed, BadPayload, RateLimited, Transient
from connectors.platforms import SOCIAL
from monitor import messages as msg

if TYPE_CHECKING:  # rich is imported by the commands that print with it, not by the daemon
    from rich.console import Console

    from monitor.report.kpis import Report


def register(subparsers: Any) -> None:
    report = subparsers.add_parser("report", help="KPIs of a period: tables, JSON, CSV, PNG charts")
    report.add_argument("--since", default="7d", help="how far back: 7d, 36h, 2w (default 7d)")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument("--png", metavar="FILE-or-DIR",
                        help="write charts: FILE.png gets all three in one image, a directory gets one file each")
    report.add_argument("--rules", help="rules file, for the timezone and brand names (default: rules.yaml)")
    report.add_argument("--db", help="database URL (default: $DATABASE_URL)")
    report.set_defaults(func=cmd_report)

    backfill = subparsers.add_parser("backfill", help="fetch X and Facebook history into the database")
    backfill.add_argument("--since", default="3d", help="how far back: 3d, 12h (X search reaches 7 days)")
    backfill.add_argument("--rules", help="rules file (default: $MENTION_MONITOR_RULES or rules.yaml)")
    backfill.add_argument("--db", help="database URL (default: $DATABASE_URL)")
    backfill.add_argument("--sandbox-url", help="fetch from a sandbox at this URL instead of the platforms")
    backfill.set_defaults(func=cmd_backfill)


def _since(text: str) -> timedelta:
    from monitor.rules.schema import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise SystemExit(f"--since: {exc}") from None


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from sqlmodel import Session

    from monitor.report import render as report_render
    from monitor.report.kpis import brand_terms_of, build_report
    from monitor.rules import RulesError, load_rules
    from monitor.settings import Settings
    from monitor.store import create_schema, make_engine

    settings = Settings()
    rules_path = args.rules or settings.rules
    ruleset = None
    if Path(rules_path).exists():
        try:
            ruleset = load_rules(rules_path)
        except RulesError as exc:
            print(str(exc), file=sys.stderr)
            return 1
    else:
        print(msg.REPORT_RULES_MISSING.format(path=rules_path), file=sys.stderr)
    timezone = ruleset.business_hours.timezone if ruleset else "UTC"
    until = datetime.now(UTC)
    engine = make_engine(args.db or settings.database_url)
    create_schema(engine)
    with Session(engine) as s:
        report = build_report(s, since=until - _since(args.since), until=until, timezone=timezone,
                              brand_terms=brand_terms_of(ruleset) if ruleset else ())
    engine.dispose()
    if args.format == "json":
        print(report_render.to_json(report))
    elif args.format == "csv":
        sys.stdout.write(report_render.to_csv(report))
    else:
        from rich.console import Console

        report_render.render_tables(report, console=Console())
    if args.png:
        paths = write_pngs(report, target=Path(args.png))
        print(msg.REPORT_PNG_WRITTEN.format(paths=", ".join(str(p) for p in paths)), file=sys.stderr)
    return 0


def write_pngs(report: Report, *, target: Path) -> list[Path]:
    """FILE.png: one image with every chart; a directory (or a path without .png): one file per chart."""
    from monitor.report import charts

    if target.suffix.lower() == ".png" and not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(charts.dashboard_png(report))
        return [target]
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, _title, png in charts.chart_pngs(report):
        (target / name).write_bytes(png)
        paths.append(target / name)
    return paths


# --------------------------------------------------------------------------- backfill


@dataclass
class BackfillCount:
    source: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    older: int = 0
    error: str = ""


def backfill(
    *, engine: Any, ruleset: Any, bindings: dict[str, Any], since: datetime, now: datetime,
    console: Console | None = None, max_pages: int = 200,
) -> list[BackfillCount]:
    """Fetch each X/Facebook source back to `since` and ingest it; returns what happened per source.

    Cases opened from history are dry runs (nothing is posted publicly for old posts) and history:
    they count in reports and never warn, breach or escalate."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from monitor.cases import pipeline
    from monitor.runtime.daemon import policy_for

    console = console or Console(stderr=True)
    counts = []
    chosen = {n: b for n, b in bindings.items() if b.platform in SOCIAL}
    policies = {b.platform: policy_for(b.connector) for b in chosen.values()}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed} fetched"),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        for name, binding in chosen.items():
            count = BackfillCount(source=name)
            counts.append(count)
            start = since
            history = SOCIAL[binding.platform].history
            reach = history.search_reach
            if binding.kind == "search" and reach is not None:
                oldest = now - reach + timedelta(minutes=1)
                if start < oldest:
                    start = oldest
                    progress.console.print(msg.REPORT_SEARCH_CLAMPED.format(source=name, days=reach.days, since=start))
            limit = history.mentions_kept if binding.kind == "mention" else None
            task = progress.add_task(name, total=limit)
            cursor = binding.connector.backfill_cursor(since=start)
            try:
                for _ in range(max_pages):
                    page = binding.connector.fetch(kind=binding.kind, cursor=cursor, query=binding.query)
                    fresh = [m for m in page.mentions if m.created_at >= start]
                    count.fetched += len(page.mentions)
                    count.older += len(page.mentions) - len(fresh)
                    result = pipeline.ingest(engine, source=name, batch=fresh, cursor=None, ruleset=ruleset, now=now,
                                             policies=policies, dry_run=True, history=True)
                    count.stored += result.stored
                    count.duplicates += result.duplicates
                    progress.update(task, completed=count.fetched)
                    # X lists newest first: once a page reaches back past `since`, the rest is older still
                    # (start_time makes X stop there itself; this guards connectors that ignore it)
                    reached_start = history.newest_first and len(fresh) < len(page.mentions)
                    if not page.more or reached_start or (limit and count.fetched >= limit):
                        break
                    cursor = page.cursor
            except RateLimited as exc:
                count.error = msg.REPORT_RATE_LIMITED.format(source=name, until=exc.until)
            except (AuthFailed, Transient, BadPayload) as exc:
                count.error = msg.REPORT_FAILED.format(source=name, error=exc)
            progress.update(task, total=count.fetched, completed=count.fetched)
    return counts


def cmd_backfill(args: argparse.Namespace) -> int:
    from monitor.rules import RulesError, load_rules
    from monitor.runtime.wiring import build_sources
    from monitor.settings import Settings
    from monitor.store import create_schema, make_engine

    settings = Settings()
    rules_path = args.rules or settings.rules
    try:
        ruleset = load_rules(rules_path)
    except (RulesError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    since = now - _since(args.since)
    sandbox_url = args.sandbox_url or settings.sandbox_url
    bindings = build_sources(settings=settings, ruleset=ruleset, sandbox_url=sandbox_url)
    if not any(b.platform in SOCIAL for b in bindings.values()):
        print(msg.REPORT_NO_SOURCES, file=sys.stderr)
        return 1
    engine = make_engine(args.db or settings.database_url)
    create_schema(engine)
    from rich.console import Console

    console = Console(stderr=True)
    try:
        counts = backfill(engine=engine, ruleset=ruleset, bindings=bindings, since=since, now=now, console=console)
    finally:
        engine.dispose()
    for count in counts:
        print(msg.REPORT_DONE.format(**{k: getattr(count, k) for k in ("source", "fetched", "stored", "duplicates", "older")}))
        if count.error:
            print(count.error, file=sys.stderr)
    return 1 if any(c.error for c in counts) else 0
