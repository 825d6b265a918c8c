"""`mention-monitor run | check-rules | explain | sandbox | triage | eval | ...`: the command line.

Argument parsing and each command's face only.  monitor/runtime/wiring.py picks the
connectors; commands import what they need lazily, so `check-rules` and `explain` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.platforms import PLATFORMS
from monitor import messages as msg
from monitor.rules import RulesError, Ruleset, load_rules
from monitor.rules.schema import Source as RulesSource
from monitor.settings import Settings, SettingsError

if TYPE_CHECKING:
    from monitor.rules.stored import StoredMention

log = logging.getLogger("monitor")
# argparse's description; not read from __doc__, which `run` leaves out (python -OO, monitor/launch.py)
DESCRIPTION = "`mention-monitor run | check-rules | explain | sandbox | triage | eval | ...`: the command line."



def shipped(relative: str) -> Path | None:
    """A file the project ships: beside the source tree, or where `pip install` put it (share/mention-monitor)."""
    for root in (Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / "mention-monitor"):
        if (root / relative).is_file():
            return root / relative
    return None


EXAMPLES = shipped("examples/mentions.jsonl")
# Modules that add their own subcommands through register(subparsers), when present.
PLUGINS = ("monitor.cli.triage", "monitor.cli.report", "monitor.cli.doctor", "monitor.cli.backtest", "monitor.cli.db")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:  # a variable that cannot be used: say which, never a secret's value
        print(exc, file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    parser = argparse.ArgumentParser(prog="mention-monitor", description=DESCRIPTION)
    try:
        installed = version("mention-monitor")
    except PackageNotFoundError:  # run from a source tree that was never installed
        installed = "unknown"
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed}")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--rules", help="rules file (default: $MENTION_MONITOR_RULES or rules.yaml)")
    run.add_argument("--db", help="database URL (default: $DATABASE_URL or sqlite:///mention-monitor.db)")
    run.add_argument("--once", action="store_true", help="poll every source once, deliver, and exit")
    run.add_argument("--replay", metavar="FILE.jsonl", help="read mentions from our JSONL instead of the platforms")
    run.add_argument("--sandbox", action="store_true",
                     help="start the built-in sandbox of the X, Facebook and Slack APIs and use it (no credentials)")
    run.add_argument("--sandbox-url", help="use a sandbox already running at this URL")
    run.add_argument("--sandbox-port", type=int, default=8700)
    run.add_argument("--seed", help="with --sandbox: JSONL stream to play (default: examples/mentions.jsonl)")
    run.add_argument("--speed", type=float, default=1.0, help="with --sandbox: play the stream this much faster")
    run.add_argument("--dry-run", action="store_true", help="compute and show everything, post nothing publicly")
    run.add_argument("--clock-speed", type=float, default=1.0, metavar="N",
                     help="the daemon's clock (SLA warnings, breaches, escalations) runs N times faster; "
                          "for demos, with --sandbox")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-rules", help="check a rules file; exit 0 if valid, 1 if not")
    check.add_argument("file", nargs="?", help="rules file (default: rules.yaml)")
    check.set_defaults(func=cmd_check_rules)

    explain = sub.add_parser("explain", help="show the triage of a text and why each rule matched or not")
    what = explain.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a text to triage and run through the rules")
    what.add_argument("--id", type=int, metavar="MENTION_ID", help="a stored mention, with its stored triage")
    explain.add_argument("--rules")
    explain.add_argument("--db", help="with --id: database URL (default: $DATABASE_URL)")
    explain.add_argument("--source", help="the rules.yaml source it came from (sets platform and kind)")
    explain.add_argument("--platform", choices=list(PLATFORMS), help="default: the source's platform, else x")
    explain.add_argument("--kind", choices=sorted({kind for p in PLATFORMS.values() for kind in p.kinds}),
                         help="default: the source's kind, else mention")
    explain.add_argument("--followers", type=int, default=0)
    explain.add_argument("--verified", action="store_true")
    explain.add_argument("--lang", default="", help="the platform's language hint")
    explain.add_argument("--mentions-brand", action="store_true", default=None)
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=cmd_explain)

    sandbox = sub.add_parser("sandbox", help="serve the sandbox of the platforms' APIs on its own")
    sandbox.add_argument("--port", type=int, default=8700)
    sandbox.add_argument("--seed", help="JSONL stream of mentions to play into it")
    sandbox.set_defaults(func=cmd_sandbox)

    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # "skipped: maximum number of running instances" is how a busy job is meant to coalesce
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    # Alembic announces its plugins and its SQL dialect at every start; "Running upgrade" lines stay
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    for noisy in ("urllib3", "slack_sdk", "slack_bolt", "tweepy", "requests_oauthlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load_rules_or_exit(path: str) -> Ruleset:
    if not Path(path).exists():
        default = shipped("rules.yaml")
        print(msg.CLI_NO_RULES_FILE.format(path=path, default=default or "rules.yaml"), file=sys.stderr)
        raise SystemExit(1)
    try:
        return load_rules(path)
    except RulesError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(1) from None


def cmd_check_rules(args: argparse.Namespace) -> int:
    path = args.file or Settings().rules
    ruleset = _load_rules_or_exit(path)
    print(msg.CLI_RULES_OK.format(path=path, rules=len(ruleset.rules), sources=len(ruleset.sources),
                                  templates=len(ruleset.templates)))
    return 0


def _explain_source(ruleset: Ruleset, name: str) -> RulesSource:
    import difflib

    try:
        return ruleset.source(name)
    except KeyError:
        names = [s.name for s in ruleset.sources]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        hint = msg.CLI_DID_YOU_MEAN.format(suggestion=close[0]) if close else ""
        hint += msg.CLI_EXPLAIN_SOURCES.format(names=", ".join(names)) if names else msg.CLI_EXPLAIN_NO_SOURCES
        print(msg.CLI_EXPLAIN_UNKNOWN_SOURCE.format(name=name, hint=hint), file=sys.stderr)
        raise SystemExit(1) from None


def _explain_stored(args: argparse.Namespace) -> StoredMention:
    import sqlalchemy as sa

    from monitor.rules.stored import read_mention
    from monitor.store import make_readonly_engine

    db = args.db or Settings().database_url
    engine = make_readonly_engine(db)
    try:
        row = read_mention(engine, mention_id=args.id)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(msg.CLI_EXPLAIN_NO_DB.format(db=db, reason=reason), file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        engine.dispose()
    if row is None:
        print(msg.CLI_EXPLAIN_NO_MENTION.format(id=args.id, db=db), file=sys.stderr)
        raise SystemExit(1)
    return row


def cmd_explain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from monitor.model import Score
    from monitor.rules import MentionFacts, explain
    from monitor.rules.stored import facts_of
    from monitor.triage import triage

    ruleset = _load_rules_or_exit(args.rules or Settings().rules)
    source = _explain_source(ruleset, args.source) if args.source else None
    stored = _explain_stored(args) if args.id is not None else None
    if stored is not None:
        facts = facts_of(stored)
        if source is not None:  # "what if it had come in through that source"
            facts = replace(facts, source=source.name)
        for key in ("platform", "kind"):
            if getattr(args, key):
                facts = replace(facts, **{key: getattr(args, key)})
        score = Score(lang=stored.lang, sentiment=stored.sentiment, complaint=stored.complaint,
                      categories=stored.categories)
    else:
        score = triage(args.text, lang_hint=args.lang, languages=list(ruleset.brand.languages))
        mentions_brand = args.mentions_brand
        if mentions_brand is None:
            handle = (ruleset.brand.handles.x or "").lower()
            mentions_brand = bool(handle) and f"@{handle}" in args.text.lower()
        facts = MentionFacts(
            platform=args.platform or (source.platform if source else "x"),
            kind=args.kind or (source.kind if source else "mention"), text=args.text, lang=score.lang,
            sentiment=score.sentiment, complaint=score.complaint, categories=score.categories,
            followers=args.followers, verified=args.verified, mentions_brand=mentions_brand,
            source=source.name if source else "")
    traces = explain(ruleset, facts)
    if args.json:
        out: dict[str, Any] = {
            "lang": score.lang, "sentiment": score.sentiment, "complaint": score.complaint,
            "categories": list(score.categories), "signals": list(score.signals),
            "platform": facts.platform, "kind": facts.kind, "source": facts.source or None,
            "rules": [{"name": t.name, "matched": t.matched, "tried": t.tried, "reasons": t.reasons}
                      for t in traces]}
        if stored is not None:
            out["mention"] = {"id": stored.id, "author": stored.author, "text": stored.text, "url": stored.url,
                              "created_at": stored.created_at.isoformat() if stored.created_at else None,
                              "stored_rule": stored.rule or None, "case_id": stored.case_id}
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if stored is not None:
        created = stored.created_at.strftime("%Y-%m-%d %H:%M UTC") if stored.created_at else "-"
        print(msg.CLI_EXPLAIN_STORED.format(id=stored.id, platform=facts.platform, kind=facts.kind,
                                            author=stored.author, source=facts.source or "-", created=created))
        print(f"  {stored.text}")
        print(msg.CLI_EXPLAIN_STORED_RULE.format(rule=f"'{stored.rule}'" if stored.rule else "-"))
        print()
    sentiment = "unknown (language not scored)" if score.sentiment is None else f"{score.sentiment:+.2f}"
    print(f"language    {score.lang}")
    print(f"sentiment   {sentiment}")
    print(f"complaint   {score.complaint:.2f}{' (complaint)' if score.is_complaint else ''}")
    print(f"categories  {', '.join(score.categories) or '-'}")
    for reason in score.signals:
        print(f"  signal    {reason}")
    print()
    for trace in traces:
        mark = "MATCH" if trace.matched else ("skip " if not trace.tried else "no   ")
        print(f"{mark} {trace.name}")
        for reason in trace.reasons:
            print(f"        {reason}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from connectors.sandbox import serve_forever

    _setup_logging("INFO")
    serve_forever(port=args.port, seed=args.seed)
    return 0


def sa_url(url: str) -> str:
    """A database URL fit for a message: the password hidden."""
    from sqlalchemy.engine import make_url

    if url.startswith("sqlite"):
        return url  # a file path: no password in it
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: say nothing of it
        return "(the configured database)"


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.runtime.memory import limit_malloc_arenas
    from monitor.runtime.wiring import build_daemon

    limit_malloc_arenas()  # before any thread starts
    settings = Settings()
    _setup_logging(settings.log_level)
    rules_path = args.rules or settings.rules
    ruleset = _load_rules_or_exit(rules_path)
    if args.replay and not Path(args.replay).exists():
        print(msg.CLI_REPLAY_MISSING.format(path=args.replay), file=sys.stderr)
        return 1
    clock = None
    if args.clock_speed != 1.0:
        if not args.clock_speed > 0:
            print(msg.CLI_CLOCK_SPEED_BAD.format(speed=args.clock_speed), file=sys.stderr)
            return 1
        from monitor.clock import ScaledClock
        from monitor.delivery.notes import humanize

        clock = ScaledClock(args.clock_speed)
        print(msg.CLI_CLOCK_SPEED.format(speed=args.clock_speed, minutes=humanize(
            timedelta(seconds=clock.real_seconds(1800)))), flush=True)
    sandbox = None
    sandbox_url = args.sandbox_url or settings.sandbox_url
    if args.sandbox and not sandbox_url:
        from connectors.sandbox import Sandbox
        from connectors.sandbox.seed import load_seed

        brand = ruleset.brand
        sandbox = Sandbox(port=args.sandbox_port, brand_x_user_id=brand.x_user_id or "1600000000000000001",
                          brand_x_handle=brand.handles.x or "nordlysshop",
                          page_id=brand.facebook_page_id or "104000000000001",
                          page_name=brand.handles.facebook or brand.name, clock=clock).start()
        sandbox_url = sandbox.url
        print(msg.CLI_SANDBOX_STARTED.format(url=sandbox_url), flush=True)
        seed = args.seed or (str(EXAMPLES) if EXAMPLES else None)
        if seed:
            sandbox.play(load_seed(seed), speed=args.speed)
        else:
            print(msg.CLI_SANDBOX_NO_SEED, file=sys.stderr)
    from monitor.store import DatabaseUnusable, SchemaTooNew

    try:
        daemon = build_daemon(settings=settings, ruleset=ruleset, rules_path=rules_path, db_url=args.db,
                              sandbox_url=sandbox_url, replay=args.replay, dry_run=args.dry_run,
                              echo=bool(sandbox) or not settings.slack_bot_token.get_secret_value(), clock=clock)
    except DatabaseUnusable as exc:
        url = sa_url(args.db or settings.database_url)
        print(msg.CLI_DB_NOT_WRITABLE.format(url=url, reason=exc), file=sys.stderr)
        return 1
    except SchemaTooNew as exc:
        from monitor import migrations

        url = sa_url(args.db or settings.database_url)
        print(msg.CLI_DB_TOO_NEW.format(url=url, revision=exc, head=migrations.head()), file=sys.stderr)
        return 1
    metrics_server = None
    if settings.metrics_port and not args.once:
        from monitor.runtime.metrics import HealthCheck, Metrics

        daemon.metrics = Metrics()
        metrics_server = daemon.metrics.serve(port=settings.metrics_port, health=HealthCheck(
            metrics=daemon.metrics, engine=daemon.engine, intervals={n: b.every for n, b in daemon.sources.items()},
            now=daemon.clock.now, started_at=daemon.clock.now()))
    socket_mode = request_url = None
    if settings.slack_app_token.get_secret_value() and settings.slack_bot_token.get_secret_value() \
            and not sandbox_url and not args.once:
        from monitor.runtime.wiring import start_slack_app

        socket_mode = start_slack_app(daemon, settings=settings, base_url=settings.slack_api_url or None)
    elif sandbox_url and not args.once:
        from monitor.runtime.wiring import start_sandbox_slack_app

        try:  # Socket Mode's place in the demo: the page posts to this app's Request URL
            request_url = start_sandbox_slack_app(daemon, sandbox_url=sandbox_url)
            print(msg.CLI_SANDBOX_PAGE.format(url=sandbox_url), flush=True)
        except OSError as exc:
            print(msg.CLI_SANDBOX_PAGE_FAILED.format(reason=exc), file=sys.stderr)
    facebook_webhook = None
    if not args.once:
        from monitor.runtime.wiring import start_facebook_webhook

        facebook_webhook = start_facebook_webhook(daemon, settings=settings)
    try:
        if args.once:
            daemon.run_once()
            left = daemon.catch_up_summary()
            if left:
                print(left, file=sys.stderr)
            return 0
        stopping = {"count": 0}

        def on_signal(signum: int, _frame: Any) -> None:
            stopping["count"] += 1
            if stopping["count"] > 1:
                raise SystemExit(130)
            print(msg.CLI_STOPPING, file=sys.stderr, flush=True)
            daemon.request_stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        daemon.start()
        daemon.wait()
        daemon.stop()
        return 0
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        if socket_mode is not None:
            socket_mode.close()
        if request_url is not None:
            request_url.stop()
        if facebook_webhook is not None:
            facebook_webhook.stop()
        if sandbox is not None:
            sandbox.stop()


if __name__ == "__main__":
    raise SystemExit(main())
