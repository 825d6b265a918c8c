"""`mention-monitor backtest`: what an edit of rules.yaml would have done to the stored mentions.

Registered by monitor/cli/__init__.py through `register(subparsers)`.  The replay itself is
monitor/cases/backtest.py; here are the arguments, the read-only database and the two faces
(a rich table for people, `--format json` for tools).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor import messages as msg

if TYPE_CHECKING:  # rich is imported when a table is printed, not by every command (nor the daemon)
    from rich.console import Console

    from monitor.cases.backtest import Backtest, Example
    from monitor.rules.schema import Ruleset


def register(subparsers: Any) -> None:
    bt = subparsers.add_parser("backtest", help="replay stored mentions through an edited rules file and "
                                                "show what would change (nothing is posted or written)")
    bt.add_argument("--rules", required=True, metavar="NEW.yaml", help="the edited rules file")
    bt.add_argument("--against", metavar="rules.yaml",
                    help="the rules in force (default: $MENTION_MONITOR_RULES or rules.yaml)")
    bt.add_argument("--since", default="30d", help="how far back: 30d, 12h, or a date like 2026-11-01 (default 30d)")
    bt.add_argument("--until", help="replay up to this date or time, UTC (default: now)")
    bt.add_argument("--db", help="database URL (default: $DATABASE_URL)")
    bt.add_argument("--format", choices=("table", "json"), default="table")
    bt.add_argument("--examples", type=int, default=3, help="example posts shown per line (default 3)")
    bt.set_defaults(func=cmd_backtest)


def _when(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _period(args: argparse.Namespace) -> tuple[datetime, datetime]:
    from monitor.rules import parse_duration

    until = datetime.now(UTC)
    if args.until:
        found = _when(args.until)
        if found is None:
            raise SystemExit(msg.BACKTEST_BAD_UNTIL.format(value=args.until))
        until = found
    try:
        return until - parse_duration(args.since), until
    except ValueError:
        since = _when(args.since)
        if since is None:
            raise SystemExit(msg.BACKTEST_BAD_SINCE.format(value=args.since)) from None
        return since, until


def load_rules_or_exit(path: str, *, bad: str = msg.BACKTEST_RULES_BAD) -> Ruleset:
    """The rules file, or exit with what is wrong with it (`bad`: the first line of the message)."""
    from pathlib import Path

    from monitor.rules import RulesError, load_rules

    if not Path(path).exists():
        from monitor.cli import shipped  # (the package's __init__ imports this module)

        raise SystemExit(msg.CLI_NO_RULES_FILE.format(path=path, default=shipped("rules.yaml") or "rules.yaml"))
    try:
        return load_rules(path)
    except RulesError as exc:
        raise SystemExit(bad.format(path=path) + "\n" + str(exc)) from None


def cmd_backtest(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from monitor.cases.backtest import backtest
    from monitor.rules.stored import read_period
    from monitor.settings import Settings

    settings = Settings()
    against = args.against or settings.rules
    current, proposed = load_rules_or_exit(against), load_rules_or_exit(args.rules)
    since, until = _period(args)
    db = args.db or settings.database_url
    from monitor.store import make_readonly_engine

    engine = make_readonly_engine(db)
    try:
        result = backtest(read_period(engine, since=since, until=until), current=current, proposed=proposed,
                          since=since, until=until, examples=max(0, args.examples))
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise SystemExit(msg.BACKTEST_NO_DB.format(db=db, reason=reason)) from None
    finally:
        engine.dispose()
    if args.format == "json":
        out = result.as_json()
        out["current"]["rules"], out["proposed"]["rules"] = against, args.rules
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    from rich.console import Console

    render_table(result, current=against, proposed=args.rules, console=Console(file=sys.stdout))
    return 0


def _example(e: Example) -> str:
    text = " ".join(e.text.split())
    text = text if len(text) <= 70 else text[:69] + "…"
    return msg.BACKTEST_EXAMPLE.format(id=e.id, author=e.author, text=text)


def _examples(bucket: Any) -> str:
    return "\n".join(_example(e) for e in bucket.examples)


def _sla(value: tuple[str, int, bool]) -> str:
    from monitor.rules import format_duration

    return msg.BACKTEST_SLA.format(rule=value[0], sla=format_duration(timedelta(seconds=value[1])),
                                   business=msg.BACKTEST_SLA_BUSINESS if value[2] else "")


def render_table(result: Backtest, *, current: str, proposed: str, console: Console) -> None:
    """The diff as a person reads it: totals, then each kind of change with example posts."""
    from rich.markup import escape
    from rich.table import Table

    console.print(escape(msg.BACKTEST_TITLE.format(
        proposed=proposed, current=current, count=f"{result.mentions:,}",
        since=f"{result.since:%Y-%m-%d %H:%M}", until=f"{result.until:%Y-%m-%d %H:%M}")), highlight=False,
        soft_wrap=True)  # one line however long the paths: the terminal wraps it, rich does not cut it
    totals = Table(box=None, show_edge=False)
    totals.add_column("")
    totals.add_column(msg.BACKTEST_COL_CURRENT, justify="right")
    totals.add_column(msg.BACKTEST_COL_PROPOSED, justify="right")
    for label, key in ((msg.BACKTEST_ROW_ALERTS, "alerts"), (msg.BACKTEST_ROW_GROUPED, "grouped"),
                       (msg.BACKTEST_ROW_REPLIES, "auto_replies"), (msg.BACKTEST_ROW_MUTED, "muted"),
                       (msg.BACKTEST_ROW_DROPPED, "dropped")):
        totals.add_row(label, f"{getattr(result.current, key):,}", f"{getattr(result.proposed, key):,}")
    console.print(totals)
    if not result.changed:
        console.print(msg.BACKTEST_NO_CHANGE, highlight=False)
        return

    def alert_table(title: str, table: dict[Any, Any]) -> None:
        if not table:
            return
        out = Table(title=title.format(count=sum(b.count for b in table.values())), title_justify="left",
                    show_lines=True)
        for name in (msg.BACKTEST_COL_RULE, msg.BACKTEST_COL_CHANNEL, msg.BACKTEST_COL_COUNT,
                     msg.BACKTEST_COL_EXAMPLES):
            out.add_column(name, justify="right" if name == msg.BACKTEST_COL_COUNT else "left")
        for (rule, channel), bucket in sorted(table.items(), key=lambda i: (-i[1].count, i[0])):
            out.add_row(escape(rule), escape(channel), str(bucket.count), escape(_examples(bucket)))
        console.print(out)

    def reply_table(title: str, table: dict[str, Any], first: str = msg.BACKTEST_COL_RULE) -> None:
        if not table:
            return
        out = Table(title=title.format(count=sum(b.count for b in table.values())), title_justify="left",
                    show_lines=True)
        out.add_column(first)
        out.add_column(msg.BACKTEST_COL_COUNT, justify="right")
        out.add_column(msg.BACKTEST_COL_EXAMPLES)
        for rule, bucket in sorted(table.items(), key=lambda i: (-i[1].count, i[0])):
            out.add_row(escape(rule), str(bucket.count), escape(_examples(bucket)))
        console.print(out)

    alert_table(msg.BACKTEST_ALERTS_GAINED, result.alerts_gained)
    alert_table(msg.BACKTEST_ALERTS_LOST, result.alerts_lost)
    reply_table(msg.BACKTEST_REPLIES_GAINED, result.replies_gained)
    reply_table(msg.BACKTEST_REPLIES_LOST, result.replies_lost)
    reply_table(msg.BACKTEST_MUTED_GAINED, result.muted_gained, first=msg.BACKTEST_COL_SILENCE)
    reply_table(msg.BACKTEST_MUTED_LOST, result.muted_lost, first=msg.BACKTEST_COL_SILENCE)
    alert_table(msg.BACKTEST_GROUPED_GAINED, result.grouped_gained)
    alert_table(msg.BACKTEST_GROUPED_LOST, result.grouped_lost)
    if result.sla_changes:
        out = Table(title=msg.BACKTEST_SLA_CHANGES.format(count=sum(b.count for b in result.sla_changes.values())),
                    title_justify="left", show_lines=True)
        for name in (msg.BACKTEST_COL_FROM, msg.BACKTEST_COL_TO, msg.BACKTEST_COL_COUNT, msg.BACKTEST_COL_EXAMPLES):
            out.add_column(name, justify="right" if name == msg.BACKTEST_COL_COUNT else "left")
        for (old, new), bucket in sorted(result.sla_changes.items(), key=lambda i: (-i[1].count, i[0])):
            out.add_row(escape(_sla(old)), escape(_sla(new)), str(bucket.count), escape(_examples(bucket)))
        console.print(out)
