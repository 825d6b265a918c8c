"""Fault matrix through the sandbox: rate limits, 5xx bursts, timeouts, garbage, expired tokens, Slack 429
and a 10-minute Slack outage.  The daemon keeps going, other sources keep flowing, nothing is lost, the
backlog drains after recovery and the operator hears about auth failures and long outages once."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connectors.facebook import FacebookSource
from connectors.slack.notifier import SlackNotifier
from connectors.x import XSource
from monitor.clock import SettableClock
from monitor.rules import load_rules
from monitor.runtime.daemon import SourceBinding
from monitor.runtime.wiring import build_daemon
from monitor.settings import Settings
from tests.reliability.helpers import (
    BRAND_X_USER_ID,
    PAGE_ID,
    alert_case_ids,
    customer_mentions,
    open_sandbox,
    outbox_states,
    public_reply_targets,
    write_rules,
)

CLIENT_TIMEOUT = 0.5
TOKEN = "fault-matrix-token"


class World:
    """A sandbox, a daemon on a settable clock, and the two clocks kept in step."""

    def __init__(self, tmp_path, url: str = "") -> None:
        self.clock = SettableClock(datetime.now(UTC))
        self.sandbox = open_sandbox(clock=self.clock)
        self.url = url or f"sqlite:///{tmp_path / 'mm.db'}"
        rules = write_rules(tmp_path / "rules.yaml", every="30s")
        ruleset = load_rules(rules)
        keys = {"api_key": TOKEN, "api_secret": TOKEN, "access_token": TOKEN, "access_token_secret": TOKEN}
        x = XSource(bearer_token=TOKEN, user_id=BRAND_X_USER_ID, brand_handle="nordlysshop",
                    base_url=self.sandbox.url, timeout=CLIENT_TIMEOUT, clock=self.clock, **keys)
        fb = FacebookSource(page_token=TOKEN, page_id=PAGE_ID, base_url=self.sandbox.url, timeout=CLIENT_TIMEOUT,
                            clock=self.clock)
        every = timedelta(seconds=30)
        sources = {
            "x-mentions": SourceBinding(name="x-mentions", platform="x", kind="mention", query="", every=every,
                                        connector=x, secret_env="X_BEARER_TOKEN"),
            "fb-comments": SourceBinding(name="fb-comments", platform="facebook", kind="comment", query="",
                                         every=every, connector=fb, secret_env="FACEBOOK_PAGE_TOKEN"),
        }
        notifier = SlackNotifier(token="xoxb-" + TOKEN, base_url=self.sandbox.url, timeout=CLIENT_TIMEOUT,
                                 clock=self.clock)
        # a restart is start() again; another replica on the same database, start(worker=...)
        self.start = lambda worker="test": build_daemon(
            settings=Settings(_env_file=None), ruleset=ruleset, rules_path=str(rules), db_url=self.url,
            clock=self.clock, sources=sources, notifier=notifier, worker=worker)
        self.daemon = self.start()
        self.n = 0
        self.sandbox.graph.add_post(post_id=f"{PAGE_ID}_1", message="News")

    def close(self) -> None:
        self.daemon.engine.dispose()
        self.sandbox.stop()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)  # the sandbox follows this clock

    def tweet(self, text: str = "order arrived broken") -> str:
        self.n += 1
        uid = str(820_000 + self.n)
        return self.sandbox.add_tweets([{"tweet": {"text": f"@nordlysshop {text} #{self.n}", "author_id": uid},
                                         "author": {"id": uid, "username": f"fault{self.n}"}}])[0]

    def comment(self, text: str = "order arrived broken") -> str:
        self.n += 1
        return self.sandbox.add_fb_comments([{"message": f"{text} #{self.n}", "post_id": f"{PAGE_ID}_1",
                                              "from": {"id": str(920_000 + self.n), "name": f"F {self.n}"}}])[0]

    def poll_all(self) -> dict[str, str]:
        return {name: self.daemon.poll(name).status for name in ("x-mentions", "fb-comments")}

    def ops(self) -> list[str]:
        return [m["text"] for m in self.sandbox.slack_messages() if m["op"] == "post" and m["channel"] == "cs-ops"]

    def stored(self) -> set[str]:
        return {e for _, e in customer_mentions(self.url)}

    def requests(self, endpoint: str) -> int:
        return self.sandbox.stats()["requests"].get(endpoint, 0)


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.close()


X_MENTIONS = f"GET /2/users/{BRAND_X_USER_ID}/mentions"


def test_x_rate_limit_waits_for_reset_while_facebook_flows(world):
    world.sandbox.add_fault(platform="x", path="/2/users", status=429)
    first = world.tweet()
    comment = world.comment()
    assert world.poll_all() == {"x-mentions": "rate_limited", "fb-comments": "ok"}
    assert world.stored() == {comment}
    before = world.requests(X_MENTIONS.replace(BRAND_X_USER_ID, ":id"))
    for _ in range(5):  # the reset is 15 minutes away: polls in between do not even ask
        world.advance(60)
        assert world.daemon.poll("x-mentions").status == "skipped"
    assert world.requests(X_MENTIONS.replace(BRAND_X_USER_ID, ":id")) == before
    # past the reset X announced (the sandbox's clock also runs in real time, so take it from the daemon)
    reset = world.daemon._health("x-mentions").retry_at
    world.advance((reset - world.clock.now()).total_seconds() + 1)
    assert world.daemon.poll("x-mentions").status == "ok"
    assert world.stored() == {first, comment}
    world.daemon.drain()
    assert world.ops() == [], "a rate limit is routine: no operator message"
    assert len(alert_case_ids(world.sandbox)) == 2


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_burst_backs_off_and_loses_nothing(world, status):
    world.sandbox.add_fault(platform="x", path="/2/users", status=status, times=4)
    world.sandbox.add_fault(platform="facebook", path=f"/{PAGE_ID}/feed", status=status, times=4)
    ids = {world.tweet(), world.comment()}
    statuses = []
    for _ in range(12):
        statuses.append(tuple(world.poll_all().values()))
        world.advance(120)
    assert ("transient", "transient") in statuses and statuses[-1] == ("ok", "ok")
    world.tweet()
    ids |= {world.tweet(), world.comment()} | set()
    world.poll_all()
    assert ids <= world.stored() and len(world.stored()) == world.n
    world.daemon.drain()
    assert world.ops() == [], "a burst of a few minutes is not an outage worth a page"
    assert sorted(Counter(alert_case_ids(world.sandbox)).values()) == [1] * world.n


def test_timeout_longer_than_client_timeout_is_transient_and_fast(world):
    world.sandbox.add_fault(platform="x", path="/2/users", delay_s=CLIENT_TIMEOUT * 4)
    first = world.tweet()
    comment = world.comment()
    started = time.monotonic()
    assert world.poll_all() == {"x-mentions": "transient", "fb-comments": "ok"}
    assert time.monotonic() - started < CLIENT_TIMEOUT * 3, "a hung platform must not hold the daemon"
    assert world.stored() == {comment}
    world.advance(120)
    assert world.daemon.poll("x-mentions").status == "ok"
    assert world.stored() == {first, comment}


def test_malformed_json_stores_nothing_and_keeps_the_cursor(world):
    world.tweet()
    world.poll_all()
    with world.daemon.engine.connect() as conn:
        import sqlalchemy as sa

        cursor_before = conn.execute(sa.text("select value from cursor where source='x-mentions'")).scalar()
    world.sandbox.add_fault(platform="x", path="/2/users", body="malformed")
    world.sandbox.add_fault(platform="facebook", path=f"/{PAGE_ID}/feed", body="malformed")
    second, comment = world.tweet(), world.comment()
    assert world.poll_all() == {"x-mentions": "bad_payload", "fb-comments": "bad_payload"}
    assert second not in world.stored() and comment not in world.stored()
    with world.daemon.engine.connect() as conn:
        assert conn.execute(sa.text("select value from cursor where source='x-mentions'")).scalar() == cursor_before
    world.advance(120)
    assert world.poll_all() == {"x-mentions": "ok", "fb-comments": "ok"}
    assert {second, comment} <= world.stored() and len(world.stored()) == 3


def test_expired_token_is_probed_on_a_back_off_and_tells_ops_once(world):
    world.sandbox.add_fault(platform="x", path="/2/users", status=401, times=1000)
    world.tweet()
    comments = set()
    for _ in range(6):
        comments.add(world.comment())
        assert world.poll_all()["fb-comments"] == "ok"
        world.daemon.drain()
        world.advance(60)
    assert world.stored() == comments, "Facebook keeps flowing while X is paused"
    ops = world.ops()
    assert len(ops) == 1, ops
    assert ops[0].startswith(":warning: x-mentions: the platform rejected our token (X rejected our credentials "
                             "for the mentions timeline (401): Unauthorized). Trying again in 1 min, then less "
                             "and less often; polling resumes by itself once the token works. To replace it, set "
                             "X_BEARER_TOKEN and restart (a restart tries at once)")
    # probed at 0, 1 and 3 min (then 7): a rejected token does not hammer X, nor stop X for good
    assert world.requests(X_MENTIONS.replace(BRAND_X_USER_ID, ":id")) == 3


def test_a_spurious_401_passes_and_x_resumes_by_itself(world):
    world.sandbox.add_fault(platform="x", path="/2/users", status=401, times=2)
    waiting = world.tweet()
    statuses = []
    for _ in range(5):
        statuses.append(world.poll_all()["x-mentions"])
        world.daemon.drain()
        world.advance(60)
    assert statuses == ["auth_failed", "auth_failed", "skipped", "ok", "ok"]
    assert waiting in world.stored()
    ops = world.ops()
    assert len(ops) == 2 and ops[1] == ":white_check_mark: x-mentions is working again after 3 min.", ops


def test_a_restart_after_a_rejected_token_polls_at_once(world):
    world.sandbox.add_fault(platform="x", path="/2/users", status=401, times=1)
    assert world.poll_all()["x-mentions"] == "auth_failed"
    waiting = world.tweet()
    world.daemon.engine.dispose()
    world.daemon = world.start()  # the operator set a fresh token and restarted, seconds later
    assert world.poll_all()["x-mentions"] == "ok"
    assert waiting in world.stored()


def test_long_source_outage_is_reported_once_then_recovery_once(world):
    world.tweet()
    world.poll_all()
    world.sandbox.add_fault(platform="x", path="/2/users", status=503, times=10_000)
    waiting = {world.tweet()}
    for _ in range(30):  # 30 minutes of X answering 503, polled as the back-off allows
        world.advance(60)
        world.poll_all()
        world.daemon.drain()
    ops = world.ops()
    assert len(ops) == 1 and ops[0].startswith(":warning: x-mentions has failed for 1") and \
        "Nothing is lost" in ops[0], ops
    world.sandbox.reset_faults() if hasattr(world.sandbox, "reset_faults") else world.sandbox._faults.clear()
    for _ in range(6):
        world.advance(60)
        world.poll_all()
        world.daemon.drain()
    assert waiting <= world.stored()
    ops = world.ops()
    assert len(ops) == 2 and ops[1].startswith(":white_check_mark: x-mentions is working again after"), ops


def test_slack_rate_limit_with_retry_after_is_honoured(world):
    world.sandbox.add_fault(platform="slack", path="/api/chat.postMessage", status=429, times=1)
    world.tweet()
    world.poll_all()
    world.daemon.drain()
    assert alert_case_ids(world.sandbox) == [], "Retry-After: 30 is longer than the client waits by itself"
    world.advance(10)
    world.daemon.drain()
    assert alert_case_ids(world.sandbox) == []
    world.advance(25)
    world.daemon.drain()
    assert len(alert_case_ids(world.sandbox)) == 1


def test_slack_down_ten_minutes_then_backlog_drains_each_alert_once(world):
    world.sandbox.add_fault(platform="slack", path="/api/", status=503, times=100_000)
    for _ in range(10):  # mentions keep being stored while Slack is down
        world.tweet()
        world.comment()
        world.poll_all()
        for _ in range(3):
            world.daemon.deliver()
            world.advance(20)
    assert len(world.stored()) == 20
    assert world.sandbox.slack_messages() == []
    assert outbox_states(world.url)["pending"] > 0
    world.sandbox._faults.clear()
    for _ in range(20):
        world.advance(60)
        world.daemon.drain()
        states = outbox_states(world.url)
        if not states["pending"] and not states["sending"]:
            break
    alerts = alert_case_ids(world.sandbox)
    assert len(alerts) == 20 and len(set(alerts)) == 20
    assert sorted(Counter(public_reply_targets(world.sandbox)).values()) == [1] * 20  # one per customer: 10 on X, 10 on Facebook
