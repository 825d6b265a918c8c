"""Killed between the platform call and the state update, 20 times: never a second public reply."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from connectors.sandbox import Sandbox
from monitor.store import make_engine
from tests.conftest import SIMPLE_RULES

ROOT = Path(__file__).resolve().parent.parent
KILLS = 20


def wait_for(predicate, *, timeout: float = 120.0, what=None) -> None:
    # a bound, not a budget: a daemon starts in ~2 s of CPU, but took 30 s to its first poll on a
    # 2-core machine at load 24 (the tests are run beside other work)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
    except OSError:
        return "(no log)"


def outbox_states(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "select state, count(*) from outbox where kind = 'reply_public' group by state")).all()
    except sa.exc.OperationalError:
        return {}
    finally:
        engine.dispose()
    return {state: n for state, n in rows}


def test_kill_while_the_reply_is_in_flight_never_posts_twice(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(SIMPLE_RULES.replace("every: 60s}", "every: 1s}", 1), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'ack.db'}"
    sandbox = Sandbox().start()
    # fast polling for a quick test: lift X's Basic-tier limits in the sandbox
    sandbox.configure(slack_burst=1000, x_limits={"mentions": (100_000, 900), "search": (100_000, 900),
                                                  "create_tweet": (100_000, 86_400)})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "X_", "FACEBOOK_"))}
    command = [sys.executable, "-m", "monitor", "run", "--sandbox-url", sandbox.url, "--rules", str(rules),
               "--db", url]
    try:
        for n in range(KILLS):
            proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=open(tmp_path / f"run{n}.log", "w"))
            try:
                # the reply left in flight by the previous kill is reconciled first, without posting again
                wait_for(lambda n=n: outbox_states(url).get("sent", 0) == n,
                         what=lambda n=n: f"reconciliation #{n}; daemon log:\n" + _tail(tmp_path / f"run{n}.log"))
                # the platform takes the post, then the answer is slow: we are killed before recording it
                sandbox.add_fault(platform="x", path="/2/tweets", method="POST", delay_s=30, times=1)
                before = len(sandbox.x_posts())
                when = datetime.fromtimestamp(sandbox.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # X's clock
                # the sandbox numbers tweets itself, so ours never collide with the replies it creates
                sandbox.add_tweets([{
                    "tweet": {"text": f"@nordlysshop order {n} arrived broken", "author_id": str(800 + n),
                              "created_at": when, "lang": "en"},
                    "author": {"id": str(800 + n), "username": f"buyer{n}", "name": f"Buyer {n}",
                               "public_metrics": {"followers_count": 10}},
                }])
                wait_for(lambda before=before: len(sandbox.x_posts()) > before,
                         what=lambda n=n: f"reply #{n} to reach X; daemon log:\n" + _tail(tmp_path / f"run{n}.log"))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            assert outbox_states(url).get("sending") == 1, "the killed run left its reply in `sending`"
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: outbox_states(url) == {"sent": KILLS}, what="the last reconciliation")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        posts = [p for p in sandbox.x_posts() if p.get("kind") == "reply"]
        in_reply_to = [p["in_reply_to"] for p in posts]
        assert len(in_reply_to) == KILLS
        assert len(set(in_reply_to)) == KILLS, "a tweet was answered twice"
    finally:
        sandbox.stop()
