"""Alert latency end to end on the sandbox: mention posted -> fetched -> stored -> Slack alert received.

    python bench/latency.py --n 300 --poll-interval 1                     # a loop: poll, then deliver
    python bench/latency.py --n 300 --poll-interval 1 --mode scheduler    # the daemon's own APScheduler jobs
    python bench/latency.py --storm 300                                   # a burst at Slack's real pace

--storm N injects N urgent mentions at once and keeps Slack's real per-channel pace (the sandbox's
1 chat.postMessage a second, bursts of 20, and the outbox's own pacing): it reports the seconds from
the poll that fetched each case until it is visible in Slack (its alert, or its line in the thread
of a grouped message), p50 and max, and how many requests Slack refused with 429.

    python bench/latency.py --crash-catch-up 300 --kills 6                # SIGKILLed daemons, then run --once

--crash-catch-up N injects N mentions at once, starts `mention-monitor run` as a subprocess against
the sandbox (Slack at its real pace), SIGKILLs it --kills times while it works through the backlog
(each restart finds Slack's bucket partly spent, as after a real crash), then times
`mention-monitor run --once`: its wall time (target: within 60 s), what it delivered, the Slack
messages it says are still queued, and the requests Slack refused with 429.

    python bench/latency.py --n 600 --poll-interval 60 --mode scheduler --facebook-webhooks

With --facebook-webhooks the daemon's Page webhook endpoint is on and the sandbox signs and POSTs each
Facebook comment and message to it as Meta does; polling goes on as reconciliation.

An in-process daemon (real tweepy / facebook-sdk / slack-sdk against the loopback sandbox, SQLite
file, default rules.yaml with every source polled each --poll-interval seconds) while mentions
are injected at a steady rate.  For every case's first Slack message (its alert, or its line in
the thread of a grouped storm alert) it reports
p50 / p95 / p99 of
  fetch_to_slack_ms:   Slack post received by the sandbox - fetch response received by the connector
                       (or, with webhooks, the event handed to the daemon, whichever came first)
  created_to_slack_ms: Slack post received by the sandbox - mention created on the platform
and created_to_slack_ms per platform and kind (facebook_comment: a Facebook comment to its alert).
Target: p95 of fetch_to_slack_ms < 100 ms.  The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import ROOT, Stream, emit, fast_rules, inject, machine, percentile


def _record_fetches(connector: Any, fetched_at: dict[str, float], lock: threading.Lock) -> None:
    """Time each mention's fetch response without changing the connector: wrap this instance's fetch."""
    original = connector.fetch

    def fetch(**kwargs: Any) -> Any:
        result = original(**kwargs)
        now = time.time()
        with lock:
            for mention in result.mentions:
                fetched_at.setdefault(f"{mention.platform}:{mention.external_id}", now)
        return result

    connector.fetch = fetch


def _record_pushes(daemon: Any, pushed_at: dict[str, float], lock: threading.Lock) -> None:
    """Time each mention a webhook handed to the daemon (wraps this instance's ingest_pushed)."""
    original = daemon.ingest_pushed

    def ingest_pushed(name: str, mentions: list[Any]) -> Any:
        now = time.time()
        with lock:
            for mention in mentions:
                pushed_at.setdefault(f"{mention.platform}:{mention.external_id}", now)
        return original(name, mentions)

    daemon.ingest_pushed = ingest_pushed


def _record_alerts(sandbox: Any, received: dict[str, float]) -> None:
    """Stamp each alert (chat.postMessage carrying our mm_alert metadata, key "case id") and each
    outbox message (key "o" + outbox id) when the sandbox gets it."""
    slack = sandbox.slack
    original = slack._m_chat_postMessage

    def post(args: dict[str, Any]) -> Any:
        now = time.time()
        answer = original(args)
        metadata = args.get("metadata") or {}
        if answer.status == 200 and isinstance(metadata, dict) and metadata.get("event_type") == "mm_alert":
            received.setdefault(str(metadata["event_payload"]["case_id"]), now)
        elif answer.status == 200 and isinstance(metadata, dict) and metadata.get("event_type") == "mm_outbox":
            payload = metadata["event_payload"]
            for outbox_id in str(payload.get("outbox_ids") or payload.get("outbox_id") or "").split(","):
                received.setdefault("o" + outbox_id, now)  # several thread notes may share one message
        elif answer.status == 429:
            received["refused"] = received.get("refused", 0) + 1
        return answer

    slack._m_chat_postMessage = post


def run(*, n: int, poll_interval: float, rate: float, mode: str, seed: int, settle_s: float,
        slack_pacing: bool = False, storm: bool = False, facebook_webhooks: bool = False) -> dict[str, Any]:
    import secrets

    from sqlmodel import Session, select

    from connectors.sandbox import Sandbox
    from monitor.model import Case, Mention, Outbox, OutboxState
    from monitor.rules import load_rules
    from monitor.runtime.wiring import build_daemon, build_sources
    from monitor.settings import Settings
    from monitor.triage import warm_up

    logging.getLogger("monitor").setLevel(logging.WARNING)
    warm_up()
    sandbox = Sandbox().start()
    # Latency, not quota, is measured here: the platforms' rate limits are lifted (economy.py keeps them).
    slack_pacing = slack_pacing or storm  # a storm is measured at Slack's real pace
    sandbox.configure(x_limits={"mentions": (1_000_000, 900), "search": (1_000_000, 900),
                                "create_tweet": (1_000_000, 86_400), "dm": (1_000_000, 900)},
                      slack_burst=None if slack_pacing else 1_000_000, graph_calls_per_hour=1_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="mm-latency-"))
    rules_path = fast_rules(tmp / "rules.yaml", every_s=poll_interval)
    ruleset = load_rules(rules_path)
    app_secret, verify_token = secrets.token_hex(16), secrets.token_hex(8)
    settings = Settings(_env_file=None, facebook_app_secret=app_secret, facebook_verify_token=verify_token)
    sources = build_sources(settings=settings, ruleset=ruleset, sandbox_url=sandbox.url)
    fetched_at: dict[str, float] = {}
    lock = threading.Lock()
    for connector in {id(b.connector): b.connector for b in sources.values()}.values():
        _record_fetches(connector, fetched_at, lock)
    alert_received: dict[str, float] = {}
    _record_alerts(sandbox, alert_received)
    daemon = build_daemon(settings=settings, ruleset=ruleset, rules_path=str(rules_path),
                          db_url=f"sqlite:///{tmp / 'latency.db'}", sandbox_url=sandbox.url, sources=sources,
                          worker="bench")
    if not slack_pacing:
        # Slack's per-channel limit is lifted in the sandbox above, so our own pacing of it goes too:
        # the figure is the pipeline's latency.  --slack-pacing shows what a storm costs under the limit.
        daemon.deliverer.pacer = None
    pushed_at: dict[str, float] = {}
    webhook = None
    if facebook_webhooks:
        from monitor.runtime.wiring import start_facebook_webhook

        _record_pushes(daemon, pushed_at, lock)
        webhook = start_facebook_webhook(daemon, settings=settings, port=-1)  # -1: any free port
        sandbox.configure_fb_webhooks(url=webhook.url + "/facebook/webhook", app_secret=app_secret)
    stream = Stream(seed=seed, start=datetime.now(UTC))
    planned = stream.steady(n, rate_per_s=1_000_000.0 if storm else rate)
    created_at: dict[str, float] = {}
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            began = time.monotonic()
            for name in daemon.sources:
                daemon.poll(name)
                daemon.drain()  # what waking the outbox job right after a poll would do
            stop.wait(max(0.0, poll_interval - (time.monotonic() - began)))

    worker = threading.Thread(target=loop, name="bench-loop", daemon=True)
    if mode == "loop":
        worker.start()
    else:
        daemon.start()
    began = time.time()
    if storm:  # one burst, in the sandbox before the first poll
        now = time.time()
        records = [dict(item.record, created_at=datetime.fromtimestamp(now, UTC).isoformat()) for item in planned]
        for record in records:
            created_at[f"{record['platform']}:{record['external_id']}"] = now
        inject(sandbox, records)
        planned = []
    for item in planned:
        delay = began + item.at_s - time.time()
        if delay > 0:
            time.sleep(delay)
        record = dict(item.record)
        now = time.time()
        record["created_at"] = datetime.fromtimestamp(now, UTC).isoformat()
        created_at[f"{record['platform']}:{record['external_id']}"] = now
        inject(sandbox, [record])
    # let the last polls and deliveries happen
    deadline = time.time() + settle_s
    while time.time() < deadline:
        time.sleep(poll_interval)
        with Session(daemon.engine) as s:
            stored = len(s.exec(select(Mention.id)).all())
            pending = len(s.exec(select(Outbox.id).where(Outbox.state == OutboxState.PENDING,
                                                         Outbox.kind == "alert")).all())
        if storm:
            pending = _slack_pending(daemon.engine)
        if stored >= n - 1 and pending == 0:
            time.sleep(2 * poll_interval)
            break
    stop.set()
    if mode == "loop":
        worker.join(timeout=30)
    else:
        daemon.stop()
    if webhook is not None:
        webhook.stop()
    with Session(daemon.engine) as s:
        cases = s.exec(select(Case.id, Mention.platform, Mention.kind, Mention.external_id)
                       .join(Mention, Mention.id == Case.first_mention_id)).all()
        # a case grouped into a storm message is announced by a line in that message's thread
        members = {str(o.payload.get("member_case_id")): "o" + str(o.id) for o in s.exec(
            select(Outbox).where(Outbox.kind == "thread")).all() if o.payload.get("note") == "group_member"}
        stored = len(s.exec(select(Mention.id)).all())
    daemon.engine.dispose()
    slack_log = sandbox.slack_messages()
    posts_made = sum(1 for m in slack_log if m["op"] == "post")
    channels_used = sorted({m["channel"] for m in slack_log if m["op"] == "post"})
    sandbox.stop()
    fetch_to_slack: list[float] = []
    created_to_slack: list[float] = []
    by_kind: dict[str, list[float]] = {}
    via = {"poll": 0, "webhook": 0}
    for case_id, platform_name, kind, external_id in cases:
        posted = alert_received.get(str(case_id)) or alert_received.get(members.get(str(case_id), ""))
        key = f"{platform_name}:{external_id}"
        # the first of the poll that fetched it and the webhook that pushed it is the one that stored it
        arrived = min(t for t in (fetched_at.get(key), pushed_at.get(key), float("inf")) if t is not None)
        if posted is None or arrived == float("inf"):
            continue
        via["webhook" if pushed_at.get(key) == arrived else "poll"] += 1
        fetch_to_slack.append((posted - arrived) * 1000)
        if key in created_at:
            created_to_slack.append((posted - created_at[key]) * 1000)
            by_kind.setdefault(f"{platform_name}_{kind}", []).append((posted - created_at[key]) * 1000)

    def stats(values: list[float]) -> dict[str, float]:
        return {f"p{p}": round(percentile(values, p), 1) for p in (50, 95, 99)}

    if storm:
        visible = sorted(v / 1000 for v in fetch_to_slack)
        return {"storm": n, "visible": len(visible), "cases": len(cases), "stored": stored,
                "slack_posts": posts_made, "slack_channels": channels_used,
                "fetch_to_visible_s": {"p50": round(percentile(visible, 50), 1),
                                       "max": round(max(visible), 1) if visible else None},
                "refused_429": int(alert_received.get("refused", 0)), "grouped": len(members),
                "poll_interval_s": poll_interval, "mode": mode}

    return {"fetch_to_slack_ms": stats(fetch_to_slack), "created_to_slack_ms": stats(created_to_slack),
            "created_to_slack_ms_by_kind": {k: {**stats(v), "alerts": len(v)} for k, v in sorted(by_kind.items())},
            "stored_by": via, "facebook_webhooks": facebook_webhooks,
            "alerts": len(fetch_to_slack), "grouped": len(members), "cases": len(cases), "stored": stored, "n": n,
            "poll_interval_s": poll_interval, "rate_per_s": rate, "mode": mode, "slack_pacing": slack_pacing}


def _slack_pending(engine: Any) -> int:
    from sqlmodel import Session, select

    from monitor.model import Outbox, OutboxState

    with Session(engine) as s:
        return len(s.exec(select(Outbox.id).where(Outbox.state.in_([OutboxState.PENDING, OutboxState.SENDING]),
                                                  Outbox.kind.in_(["alert", "thread"]))).all())


def crash_catch_up(*, n: int, kills: int, seed: int) -> dict[str, Any]:
    """SIGKILL a running daemon (a subprocess) several times during a backlog of n, then time `run --once`."""
    from sqlmodel import Session, select

    from connectors.sandbox import Sandbox
    from monitor.delivery import outbox
    from monitor.model import Case, Outbox, OutboxState
    from monitor.store import make_engine

    sandbox = Sandbox().start()  # Slack keeps its default pace: 1 chat.postMessage a second per channel, bursts of 20
    sandbox.configure(x_limits={"mentions": (1_000_000, 900), "search": (1_000_000, 900),
                                "create_tweet": (1_000_000, 86_400), "dm": (1_000_000, 900)},
                      graph_calls_per_hour=1_000_000)
    tmp = Path(tempfile.mkdtemp(prefix="mm-crash-"))
    rules_path = fast_rules(tmp / "rules.yaml", every_s=1)
    db_url = f"sqlite:///{tmp / 'crash.db'}"
    now = datetime.now(UTC)
    records = [dict(item.record, created_at=now.isoformat())
               for item in Stream(seed=seed, start=now).steady(n, rate_per_s=1_000_000.0)]
    inject(sandbox, records)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "X_", "FACEBOOK_", "DATABASE_URL"))}
    command = [sys.executable, "-m", "monitor", "run", "--rules", str(rules_path), "--db", db_url,
               "--sandbox-url", sandbox.url]
    rng = random.Random(seed)

    def slack_posts() -> int:
        return sum(1 for m in sandbox.slack_messages() if m["op"] == "post")

    def requests() -> int:
        return int(sandbox.stats()["requests"].get("POST /api/chat.postMessage", 0))

    lifetimes: list[float] = []
    for _ in range(kills):
        before = slack_posts()
        wanted = before + rng.randint(2, 12)  # killed mid-backlog: after a few more Slack messages
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        while proc.poll() is None and slack_posts() < wanted and time.monotonic() - started < 120:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        lifetimes.append(round(time.monotonic() - started, 1))
    engine = make_engine(db_url)
    queued_before = outbox.backlog(engine)
    posts_before, asked_before = slack_posts(), requests()
    began = time.monotonic()
    once = subprocess.run(command + ["--once"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    once_s = time.monotonic() - began
    said = [line for line in once.stderr.splitlines() if "still queued" in line]
    with Session(engine) as s:
        left = outbox.backlog(engine)
        cases = len(s.exec(select(Case.id)).all())
        failed = len(s.exec(select(Outbox.id).where(Outbox.state == OutboxState.FAILED)).all())
    engine.dispose()
    delivered = slack_posts() - posts_before
    refused_once = requests() - asked_before - delivered
    refused_all = requests() - slack_posts()
    sandbox.stop()
    return {"crash_catch_up": n, "kills": kills, "lifetimes_s": lifetimes, "cases": cases,
            "queued_before_once": queued_before, "once_s": round(once_s, 1), "once_exit": once.returncode,
            "once_slack_posts": delivered, "once_refused_429": refused_once, "refused_429_all_runs": refused_all,
            "still_queued": left, "failed_rows": failed, "once_said": said[-1] if said else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="mentions injected (default 300)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls of each source")
    parser.add_argument("--rate", type=float, default=5.0, help="mentions injected per second (default 5)")
    parser.add_argument("--mode", choices=("loop", "scheduler"), default="loop",
                        help="loop: poll each source and deliver at once; scheduler: the daemon's own jobs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--slack-pacing", action="store_true",
                        help="keep the outbox's per-channel Slack pacing (1 message/s, bursts of 10)")
    parser.add_argument("--settle", type=float, default=30.0, help="max seconds to wait after the last injection")
    parser.add_argument("--facebook-webhooks", action="store_true",
                        help="Page webhooks on: the sandbox POSTs each Facebook comment and message to the daemon")
    parser.add_argument("--storm", type=int, default=0, metavar="N",
                        help="inject N mentions at once and measure them at Slack's real pace")
    parser.add_argument("--crash-catch-up", type=int, default=0, metavar="N",
                        help="a backlog of N; SIGKILL a running daemon --kills times, then time run --once")
    parser.add_argument("--kills", type=int, default=6, help="with --crash-catch-up: SIGKILLs before run --once")
    args = parser.parse_args()
    if args.crash_catch_up:
        result = crash_catch_up(n=args.crash_catch_up, kills=args.kills, seed=args.seed)
        print(f"backlog of {result['crash_catch_up']}: {result['kills']} SIGKILLs (lived {result['lifetimes_s']} s), "
              f"then run --once took {result['once_s']} s (target: within 60 s), exit {result['once_exit']}")
        print(f"run --once posted {result['once_slack_posts']} Slack messages, {result['once_refused_429']} refused "
              f"with 429; {result['still_queued']} outbox rows still queued; it said: {result['once_said']!r}")
        emit({**result, "machine": machine()})
        return
    if args.facebook_webhooks and args.mode != "scheduler":
        parser.error("--facebook-webhooks needs --mode scheduler: a pushed mention's alert goes out through the "
                     "daemon's own outbox job")
    if args.storm:
        result = run(n=args.storm, poll_interval=args.poll_interval, rate=args.rate, mode=args.mode, seed=args.seed,
                     settle_s=max(args.settle, 240.0), storm=True)
        v = result["fetch_to_visible_s"]
        print(f"storm of {result['storm']}: {result['visible']} of {result['cases']} cases visible in Slack "
              f"({result['grouped']} in grouped threads)")
        print(f"fetch -> visible p50 {v['p50']} s  max {v['max']} s  (target: every case within 30 s)  "
              f"429s {result['refused_429']}")
        emit({**result, "machine": machine()})
        return
    result = run(n=args.n, poll_interval=args.poll_interval, rate=args.rate, mode=args.mode, seed=args.seed,
                 slack_pacing=args.slack_pacing, facebook_webhooks=args.facebook_webhooks,
                 settle_s=args.settle)
    f, c = result["fetch_to_slack_ms"], result["created_to_slack_ms"]
    print(f"{result['alerts']} alerts from {result['stored']} stored mentions ({result['mode']} mode)")
    print(f"fetch -> Slack   p50 {f['p50']} ms  p95 {f['p95']} ms  p99 {f['p99']} ms  (target p95 < 100 ms)")
    print(f"created -> Slack p50 {c['p50']} ms  p95 {c['p95']} ms  p99 {c['p99']} ms")
    for kind, k in result["created_to_slack_ms_by_kind"].items():
        print(f"  {kind:17} p50 {k['p50']} ms  p95 {k['p95']} ms  ({k['alerts']} alerts)")
    print(f"stored first by: {result['stored_by']}")
    emit({**result, "machine": machine()})


if __name__ == "__main__":
    main()
