"""Shared pieces of the reliability proofs: test rules, a mention stream, the daemon as a subprocess, counts."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from connectors.sandbox import Sandbox
from monitor.store import make_engine

ROOT = Path(__file__).resolve().parents[2]
BRAND_X_USER_ID = "1600000000000000001"
PAGE_ID = "104000000000001"
PING_MARKERS = ("<!channel>", "<!here>", "<!everyone>", "<@U", "<!subteam^")
FB_POSTS = 4  # comments are spread over this many Page posts
URGENT_SHARE = 0.15
SECRET_ENV_PREFIXES = ("SLACK_", "X_", "FACEBOOK_", "DATABASE_URL", "MENTION_MONITOR_")

RULES = """\
version: 1
brand:
  name: Nordlys Shop
  default_language: en
  languages: [en]
  handles: {{x: nordlysshop, facebook: Nordlys Shop}}
  x_user_id: "1600000000000000001"
  facebook_page_id: "104000000000001"
  keywords: [nordlys]
sources:
  - {{name: x-mentions, platform: x, kind: mention, every: {every}}}
  - {{name: fb-comments, platform: facebook, kind: comment, every: {every}}}
channels: {{alerts: "#cs-alerts", escalations: "#cs-escalations", ops: "#cs-ops"}}
slack: {{approvers: [U0APPROVER1], oncall: S0ONCALL}}
grouping: {{window: 2m, max_alerts: 100000, channel_max_alerts: 100000}}
acknowledgement: {{cooldown: 24h, dry_run: false}}
templates:
  move_to_dm:
    en: "Hi @{{author}}, we're sorry to hear that. We've sent you a DM so we can sort it out."
rules:
  - name: drop-own-posts
    when: {{from_brand: true}}
    drop: true
  - name: urgent
    when: {{keywords_any: [{keywords}]}}
    alert: {{channel: alerts, severity: high, sla: 30m}}
    acknowledge: {{template: move_to_dm, mode: auto}}
"""


def rules_text(*, every: str = "1s", keywords: Iterable[str] = ("broken", "refund")) -> str:
    return RULES.format(every=every, keywords=", ".join(keywords))


def write_rules(path: Path, **kwargs: Any) -> Path:
    path.write_text(rules_text(**kwargs), encoding="utf-8")
    return path


def open_sandbox(*, clock: Any = None) -> Sandbox:
    """A sandbox whose rate limits never get in the way of a soak (faults are injected on purpose).
    With `clock` (an in-process daemon's SettableClock) the sandbox follows it: one source of time."""
    box = Sandbox(port=0, brand_x_user_id=BRAND_X_USER_ID, page_id=PAGE_ID, clock=clock).start()
    box.configure(slack_burst=1_000_000, slack_refill_per_s=1000.0, graph_calls_per_hour=10_000_000,
                  x_limits={"mentions": (1_000_000, 900), "search": (1_000_000, 900),
                            "create_tweet": (1_000_000, 86400), "dm": (1_000_000, 900), "me": (1_000_000, 86400)})
    return box


# --------------------------------------------------------------------------- the stream


@dataclass(slots=True)
class Injected:
    x_ids: list[str] = field(default_factory=list)
    fb_ids: list[str] = field(default_factory=list)
    urgent: set[tuple[str, str]] = field(default_factory=set)  # (platform, external_id)

    @property
    def total(self) -> int:
        return len(self.x_ids) + len(self.fb_ids)


def make_item(i: int, *, rng: random.Random) -> tuple[str, dict[str, Any], bool]:
    """(platform, control-API payload, urgent) of mention number i; every author is distinct."""
    urgent = rng.random() < URGENT_SHARE
    text = f"order {i} arrived broken, I want a refund" if urgent else f"order {i} looks lovely, thanks"
    if i % 2 == 0:
        uid = str(800_000_000 + i)
        # the sandbox numbers tweets itself, so our replies never collide with injected ids
        return "x", {"tweet": {"text": f"@nordlysshop {text}", "author_id": uid, "lang": "en"},
                     "author": {"id": uid, "username": f"cust{i}", "name": f"Customer {i}"}}, urgent
    return "facebook", {"id": f"{PAGE_ID}_{500_000_000 + i}", "message": text,
                        "from": {"id": str(900_000_000 + i), "name": f"Kunde {i}"},
                        "post_id": f"{PAGE_ID}_{100_000_000_000_000 + i % FB_POSTS}"}, urgent


class Feeder:
    """Releases `n` mentions into the sandbox over `seconds`, in a background thread."""

    def __init__(self, sandbox: Sandbox, *, n: int, seconds: float, seed: int = 11) -> None:
        self.sandbox = sandbox
        self.n = n
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.injected = Injected()
        self.done = threading.Event()
        for post in range(FB_POSTS):
            sandbox.graph.add_post(post_id=f"{PAGE_ID}_{100_000_000_000_000 + post}", message=f"News {post}")
        self._thread = threading.Thread(target=self._run, name="feeder", daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def _run(self) -> None:
        batches = max(1, int(self.seconds * 10))
        per_batch = -(-self.n // batches)
        i = 0
        while i < self.n:
            x_items, fb_items = [], []
            for _ in range(min(per_batch, self.n - i)):
                platform, payload, urgent = make_item(i, rng=self.rng)
                (x_items if platform == "x" else fb_items).append((payload, urgent))
                i += 1
            if x_items:
                ids = self.sandbox.add_tweets([p for p, _ in x_items])
                self.injected.x_ids += ids
                self.injected.urgent |= {("x", t) for t, (_, u) in zip(ids, x_items, strict=True) if u}
            if fb_items:
                ids = self.sandbox.add_fb_comments([p for p, _ in fb_items])
                self.injected.fb_ids += ids
                self.injected.urgent |= {("facebook", c) for c, (_, u) in zip(ids, fb_items, strict=True) if u}
            time.sleep(0.1)
        self.done.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


# --------------------------------------------------------------------------- the daemon as a subprocess


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SECRET_ENV_PREFIXES)}
    env["MENTION_MONITOR_SLACK_RATE"] = "0"  # open_sandbox lifts Slack's limit: our pacing of it goes too
    env.update(extra)
    return env


class DaemonProcess:
    """`python -m monitor run` in a subprocess, its stderr in a file the test can watch."""

    def __init__(self, *, sandbox_url: str, rules: Path, db_url: str, log_path: Path,
                 env: dict[str, str] | None = None, once: bool = False) -> None:
        command = [sys.executable, "-m", "monitor", "run", "--sandbox-url", sandbox_url, "--rules", str(rules),
                   "--db", db_url]
        if once:
            command.append("--once")
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env or clean_env(), stdout=subprocess.DEVNULL,
                                     stderr=self._log)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, *, count: int = 1, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(needle) >= count:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    def terminate(self, *, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to stop)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code, time.monotonic() - started


# --------------------------------------------------------------------------- what happened


def query(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def customer_mentions(url: str) -> list[tuple[str, str]]:
    return [(p, e) for p, e in query(url, "select platform, external_id from mention where not from_brand")]


def outbox_states(url: str) -> Counter[str]:
    return Counter({s: n for s, n in query(url, "select state, count(*) from outbox group by state")})


def alert_case_ids(sandbox: Sandbox) -> list[str]:
    """case ids of the top-level alert posts the sandbox Slack received, one entry per post."""
    out = []
    for m in sandbox.slack_messages():
        meta = m.get("metadata") or {}
        if m["op"] == "post" and not m["thread_ts"] and isinstance(meta, dict) and meta.get("event_type") == "mm_alert":
            out.append(str((meta.get("event_payload") or {}).get("case_id")))
    return out


def public_reply_targets(sandbox: Sandbox) -> list[str]:
    """What every public reply answered, X and Facebook, one entry per reply posted."""
    x = [f"x:{p['in_reply_to']}" for p in sandbox.x_posts() if p["kind"] == "reply"]
    fb = [f"facebook:{p['in_reply_to']}" for p in sandbox.fb_posts() if p["kind"] == "comment_reply"]
    return x + fb


def slack_pings(sandbox: Sandbox, *, allowed: Iterable[str] = ()) -> list[str]:
    """Every ping marker found in what the sandbox Slack received, except the ones our rules ask for."""
    allowed = tuple(allowed)
    found = []
    for m in sandbox.slack_messages():
        text = str(m.get("text", "")) + str(m.get("blocks", ""))
        for token in allowed:
            text = text.replace(token, "")
        found += [marker for marker in PING_MARKERS if marker in text]
    return found
