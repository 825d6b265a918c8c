"""API economy over a simulated day: reads per stored mention, requests over the limit, Slack messages
per alert, and an estimated X pay-per-use cost.

    python bench/economy.py                       # 5,000 bursty mentions over 24 simulated hours
    python bench/economy.py --mentions 500 --hours 2

The daemon (default rules.yaml: X mentions every 60 s, X search, own posts and DMs every 2 min, Facebook every 60 s)
runs against the sandbox with its default, X Basic-like rate limits.  Time is simulated: the
daemon's SettableClock and the sandbox clock are moved together in --step second steps; at each
step the due polls run (as the scheduler would), then the outbox is delivered, then the SLA sweep.

X prices (defaults; pass others on the command line) are from docs.x.com "X API pay-per-usage
pricing" (read 2026-11): Posts: Read $0.005 per post returned, User: Read $0.010 per user returned,
Content: Create $0.015 per post, DM Interaction: Create $0.015; a post or user read twice in one
UTC day is charged once.  The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import RULES, Stream, emit, inject, machine


def _count_statuses(sandbox: Any, statuses: Counter) -> None:
    """Count every answer's HTTP status by endpoint (429s are requests over the limit)."""
    original = sandbox.dispatch

    def dispatch(request: Any) -> Any:
        answer, delay = original(request)
        if not request.path.startswith("/_sandbox/"):
            from connectors.sandbox.server import _classify

            _, endpoint = _classify(request, page_id=sandbox.graph.page["id"])
            statuses[(endpoint, answer.status)] += 1
        return answer, delay

    sandbox.dispatch = dispatch


def run(*, mentions: int, hours: float, step_s: float, seed: int, prices: dict[str, float]) -> dict[str, Any]:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from connectors.sandbox import Sandbox
    from monitor.clock import SettableClock
    from monitor.model import Case, Mention
    from monitor.rules import load_rules
    from monitor.runtime.wiring import build_daemon, build_sources
    from monitor.settings import Settings

    logging.getLogger("monitor").setLevel(logging.ERROR)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    clock = SettableClock(start)
    sandbox = Sandbox(clock=clock).start()  # the platforms' time is the daemon's: one source
    statuses: Counter = Counter()
    _count_statuses(sandbox, statuses)

    tmp = Path(tempfile.mkdtemp(prefix="mm-economy-"))
    ruleset = load_rules(RULES)
    settings = Settings(_env_file=None)
    sources = build_sources(settings=settings, ruleset=ruleset, sandbox_url=sandbox.url, clock=clock)
    daemon = build_daemon(settings=settings, ruleset=ruleset, rules_path=str(RULES),
                          db_url=f"sqlite:///{tmp / 'economy.db'}", sandbox_url=sandbox.url, clock=clock,
                          sources=sources, worker="bench")
    stream = Stream(seed=seed, start=start)
    day = stream.day(total=mentions)
    if hours < 24:  # a shorter run keeps the same shape, squeezed
        day = [type(t)(t.at_s * hours / 24, {**t.record, "created_at": (start + timedelta(
            seconds=t.at_s * hours / 24)).isoformat()}) for t in day]
    next_poll = {name: 0.0 for name in daemon.sources}
    every = {name: b.every.total_seconds() for name, b in daemon.sources.items()}
    next_sweep = 0.0
    injected = 0
    began = time.perf_counter()
    t = 0.0
    end_s = hours * 3600
    while t <= end_s + 300:  # five more minutes to fetch and deliver the last ones
        due = []
        while injected < len(day) and day[injected].at_s <= t:
            due.append(day[injected].record)
            injected += 1
        if due:
            inject(sandbox, due)
        for name in daemon.sources:
            if t >= next_poll[name]:
                daemon.poll(name)
                next_poll[name] = t + every[name]
        daemon.drain()
        if t >= next_sweep:
            daemon.sweep()
            next_sweep = t + 15
        t += step_s
        clock.advance(step_s)
    elapsed = time.perf_counter() - began
    stats = sandbox.stats()
    with Session(daemon.engine) as s:
        stored = s.exec(select(func.count()).select_from(Mention)).one()
        stored_x = s.exec(select(func.count()).select_from(Mention).where(Mention.platform == "x")).one()
        stored_fb = s.exec(select(func.count()).select_from(Mention).where(Mention.platform == "facebook")).one()
        x_authors = s.exec(select(func.count(func.distinct(Mention.author_id))).where(Mention.platform == "x")).one()
        cases = s.exec(select(func.count()).select_from(Case)).one()
    messages = sandbox.slack_messages()
    x_posts = sandbox.x_posts()
    daemon.engine.dispose()
    sandbox.stop()

    x_ids = {str(r["external_id"]) for r in (t.record for t in day) if r["platform"] == "x"}
    served = stats["served"]
    served_total = sum(served.values())
    x_served = sum(v for k, v in served.items() if k in x_ids or k.isdigit())
    x_unique = sum(1 for k in served if k in x_ids or k.isdigit())
    read_requests = {k: v for k, v in stats["requests"].items() if k.startswith("GET ")}
    over_limit = {f"{endpoint} {status}": n for (endpoint, status), n in statuses.items() if status == 429}
    posts = [m for m in messages if m["op"] == "post"]
    alerts = [m for m in posts if (m.get("metadata") or {}).get("event_type") == "mm_alert"]
    updates = [m for m in messages if m["op"] == "update"]
    x_writes = Counter(p["kind"] for p in x_posts)
    cost = {
        "post_reads": round(x_unique * prices["post_read"], 2),
        "user_reads": round(x_authors * prices["user_read"], 2),
        "posts_created": round((x_writes.get("reply", 0) + x_writes.get("post", 0)) * prices["create"], 2),
        "dms_created": round(x_writes.get("dm", 0) * prices["dm"], 2),
    }
    cost["total"] = round(sum(cost.values()), 2)
    return {
        "reads_per_stored_mention": round(served_total / max(stored, 1), 3),
        "x_reads_per_stored_mention": round(x_served / max(stored_x, 1), 3),
        # Facebook is rate-limited, not billed: Graph GETs per stored comment or message, overlap
        # re-reads, rechecks and the hourly reconciliation sweep included (issue #21)
        "graph_calls_per_stored_facebook_mention": round(
            sum(v for k, v in read_requests.items() if k.startswith("GET /:")) / max(stored_fb, 1), 3),
        "graph_calls": sum(v for k, v in read_requests.items() if k.startswith("GET /:")),
        "read_requests": sum(read_requests.values()),
        "read_requests_by_endpoint": read_requests,
        "requests_over_limit": sum(over_limit.values()),
        "over_limit_by_endpoint": over_limit,
        "slack_posts": len(posts), "slack_updates": len(updates), "alerts": len(alerts), "cases": cases,
        "slack_messages_per_alert": round(len(posts) / max(len(alerts), 1), 2),
        "slack_calls_per_alert": round((len(posts) + len(updates)) / max(len(alerts), 1), 2),
        "mentions": mentions, "injected": injected, "stored": stored, "stored_x": stored_x,
        "x_writes": dict(x_writes), "x_cost_usd_per_day": cost, "prices_usd": prices,
        "hours": hours, "step_s": step_s, "elapsed_s": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=5000, help="mentions in the simulated day (default 5000)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--step", type=float, default=10.0, help="simulated seconds per step (default 10)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--price-post-read", type=float, default=0.005, help="USD per X post read")
    parser.add_argument("--price-user-read", type=float, default=0.010, help="USD per X user read")
    parser.add_argument("--price-create", type=float, default=0.015, help="USD per X post created")
    parser.add_argument("--price-dm", type=float, default=0.015, help="USD per X DM sent")
    args = parser.parse_args()
    prices = {"post_read": args.price_post_read, "user_read": args.price_user_read, "create": args.price_create,
              "dm": args.price_dm}
    result = run(mentions=args.mentions, hours=args.hours, step_s=args.step, seed=args.seed, prices=prices)
    print(f"{result['stored']} mentions stored from {result['injected']} posted; "
          f"{result['read_requests']} read requests")
    print(f"reads per stored mention {result['reads_per_stored_mention']} (target 1.00), "
          f"requests over the limit {result['requests_over_limit']} (target 0)")
    print(f"Slack: {result['slack_posts']} posts + {result['slack_updates']} updates for {result['alerts']} alerts "
          f"({result['slack_messages_per_alert']} posts per alert)")
    print(f"X pay-per-use estimate: ${result['x_cost_usd_per_day']['total']} for the day "
          f"{result['x_cost_usd_per_day']}")
    emit({**result, "machine": machine()})


if __name__ == "__main__":
    main()
