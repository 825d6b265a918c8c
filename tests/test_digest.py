"""The digest: when it is due (rules' timezone, once per period), and what lands in Slack (the sandbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import ConnectorError
from connectors.sandbox.server import Sandbox
from connectors.slack.notifier import SlackNotifier
from monitor.report.digest import digest_due, last_sent, period_of, post_digest
from monitor.rules import parse_rules
from tests.conftest import SIMPLE_RULES
from tests.test_report import load_week

WITH_DIGEST_CHANNEL = SIMPLE_RULES.replace('ops: "#cs-ops"}', 'ops: "#cs-ops", digest: "#cs-weekly"}')


def rules(digest: str | None = '{every: weekly, day: mon, at: "09:00", channel: digest}') -> Any:
    text = WITH_DIGEST_CHANNEL + (f"digest: {digest}\n" if digest else "")
    return parse_rules(text, filename="digest.yaml")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekly_digest_is_due_at_its_local_time_once_a_week() -> None:
    weekly = rules()
    # Copenhagen is UTC+1 in November: Monday 09:00 there is 08:00 UTC.
    sent = utc(2026, 11, 16, 8, 0, 5)
    assert not digest_due(ruleset=weekly, last_sent=sent, now=utc(2026, 11, 23, 7, 59))
    assert digest_due(ruleset=weekly, last_sent=sent, now=utc(2026, 11, 23, 8, 0))
    sent_again = utc(2026, 11, 23, 8, 0, 3)
    for later in (utc(2026, 11, 23, 8, 15), utc(2026, 11, 26, 12, 0), utc(2026, 11, 30, 7, 59)):
        assert not digest_due(ruleset=weekly, last_sent=sent_again, now=later), later
    assert digest_due(ruleset=weekly, last_sent=sent_again, now=utc(2026, 11, 30, 8, 0))
    # never sent: the latest scheduled time has passed, so the first digest goes out now
    assert digest_due(ruleset=weekly, last_sent=None, now=utc(2026, 11, 25, 12, 0))


def test_digest_keeps_its_wall_clock_time_across_daylight_saving() -> None:
    weekly = rules()
    # 19 Oct 2026 09:00 CEST = 07:00 UTC; on 25 Oct the clocks go back: 26 Oct 09:00 CET = 08:00 UTC
    sent = utc(2026, 10, 19, 7, 0, 10)
    assert not digest_due(ruleset=weekly, last_sent=sent, now=utc(2026, 10, 26, 7, 30))
    assert digest_due(ruleset=weekly, last_sent=sent, now=utc(2026, 10, 26, 8, 0))


def test_daily_digest_and_no_digest() -> None:
    daily = rules('{every: daily, at: "18:30", channel: digest}')
    sent = utc(2026, 11, 23, 17, 31)
    assert not digest_due(ruleset=daily, last_sent=sent, now=utc(2026, 11, 24, 17, 29))
    assert digest_due(ruleset=daily, last_sent=sent, now=utc(2026, 11, 24, 17, 30))
    assert period_of(ruleset=daily, at=utc(2026, 11, 24, 17, 30)) == (utc(2026, 11, 22, 23, 0),
                                                                      utc(2026, 11, 23, 23, 0))
    assert not digest_due(ruleset=rules(None), last_sent=None, now=utc(2026, 11, 24, 17, 30))


def test_post_digest_puts_summary_and_charts_in_slack_once(engine: Any, sandbox: Sandbox) -> None:
    load_week(engine)
    weekly = rules()
    slack = SlackNotifier(token="xoxb-test", base_url=sandbox.url, timeout=5.0)
    now = utc(2026, 11, 23, 8, 0, 2)  # Monday 09:00:02 in Copenhagen: the week 16-22 Nov is over

    sandbox.add_fault(platform="slack", path="/api/files.completeUploadExternal", status=500, times=1)
    with pytest.raises(ConnectorError):
        post_digest(engine=engine, notifier=slack, ruleset=weekly, now=now)
    assert last_sent(engine) is None  # the failed attempt gave the period back
    assert [m for m in sandbox.slack_messages() if m.get("files")] == []

    assert post_digest(engine=engine, notifier=slack, ruleset=weekly, now=now) is True
    posts = [m for m in sandbox.slack_messages() if m.get("files")]
    assert len(posts) == 1
    post = posts[0]
    assert post["channel"].lstrip("#") == "cs-weekly"
    assert post["text"].splitlines()[:4] == [
        "*Mentions digest, week of 16 Nov - 22 Nov 2026*",
        "• 7 mentions, 6 cases, 3 resolved",
        "• First response: median 15 min, 90% within 48 min",
        "• Within target: 60% (3 of 5), 3 breaches",
    ]
    assert [f["title"] for f in post["files"]] == ["Mentions digest, week of 16 Nov - 22 Nov 2026"] * 3
    assert all(f["length"] > 10_000 for f in post["files"])
    assert last_sent(engine) == now

    # a second sweep in the same week, even from another replica, posts nothing
    assert post_digest(engine=engine, notifier=slack, ruleset=weekly, now=utc(2026, 11, 23, 8, 0, 17)) is False
    assert len([m for m in sandbox.slack_messages() if m.get("files")]) == 1


def test_a_new_daemon_posts_its_first_digest_at_the_next_scheduled_time(engine: Any, sandbox: Sandbox,
                                                                         tmp_path: Any) -> None:
    """Started on a Tuesday, it must not post an empty 'weekly' digest at once; the first one comes
    on Monday 09:00 and covers the days since it started."""
    from monitor.clock import SettableClock
    from monitor.runtime.daemon import Daemon

    path = tmp_path / "digest.yaml"
    path.write_text(WITH_DIGEST_CHANNEL + 'digest: {every: weekly, day: mon, at: "09:00", channel: digest}\n')
    clock = SettableClock(utc(2026, 11, 24, 13, 0))
    daemon = Daemon(engine=engine, rules_path=path, ruleset=rules(), sources={}, clock=clock,
                    notifier=SlackNotifier(token="xoxb-test", base_url=sandbox.url, timeout=5.0))
    daemon.sweep()
    daemon.drain()  # the digest is an outbox row: the sweep queues it, the outbox posts it
    assert [m for m in sandbox.slack_messages() if m.get("files")] == []
    assert last_sent(engine) == utc(2026, 11, 24, 13, 0)
    clock.set(utc(2026, 11, 30, 7, 59))  # Monday 08:59 in Copenhagen
    daemon.sweep()
    daemon.drain()
    assert [m for m in sandbox.slack_messages() if m.get("files")] == []
    clock.set(utc(2026, 11, 30, 8, 0, 5))
    daemon.sweep()
    daemon.drain()
    posts = [m for m in sandbox.slack_messages() if m.get("files")]
    assert len(posts) == 1
    assert posts[0]["text"].splitlines()[0] == "*Mentions digest, week of 23 Nov - 29 Nov 2026*"


def test_the_digest_goes_through_the_outbox_once_retried_with_back_off_and_not_twice_after_a_restart(
        engine: Any, sandbox: Sandbox, tmp_path: Any) -> None:
    import sqlalchemy as sa

    from monitor.clock import SettableClock
    from monitor.model import Outbox
    from monitor.report.digest import start_counting
    from monitor.runtime.daemon import Daemon

    load_week(engine)
    path = tmp_path / "digest.yaml"
    path.write_text(WITH_DIGEST_CHANNEL + 'digest: {every: weekly, day: mon, at: "09:00", channel: digest}\n')
    start_counting(engine, now=utc(2026, 11, 16, 8, 0, 5))  # last Monday's digest went out
    clock = SettableClock(utc(2026, 11, 23, 8, 0, 2))  # Monday 09:00:02 in Copenhagen

    def daemon() -> Daemon:
        return Daemon(engine=engine, rules_path=path, ruleset=rules(), sources={}, clock=clock,
                      notifier=SlackNotifier(token="xoxb-test", base_url=sandbox.url, timeout=5.0))

    def shared() -> list[dict[str, Any]]:
        return [m for m in sandbox.slack_messages() if m.get("files")]

    def digest_rows() -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(sa.select(Outbox.__table__.c.state, Outbox.__table__.c.attempts,
                                          Outbox.__table__.c.next_attempt_at, Outbox.__table__.c.error)
                                .where(Outbox.__table__.c.kind == "digest")).all()

    first = daemon()
    sandbox.add_fault(platform="slack", path="/api/files.completeUploadExternal", status=500, times=2)
    waits = []
    for _ in range(2):  # Slack fails twice: the second failure waits longer (DELIVERIES, jitter below)
        first.sweep()
        first.drain()
        assert shared() == []
        [(state, attempts, next_at, error)] = digest_rows()
        assert state == "pending" and error
        wait = (next_at.replace(tzinfo=UTC) - clock.now()).total_seconds()
        waits.append(wait)
        clock.advance(wait + 0.1)
    assert 1.0 <= waits[0] <= 2.0 and 2.0 <= waits[1] <= 4.0, waits
    first.sweep()
    first.drain()
    posts = shared()
    assert len(posts) == 1
    assert posts[0]["channel"].lstrip("#") == "cs-weekly"
    assert posts[0]["text"].splitlines()[0] == "*Mentions digest, week of 16 Nov - 22 Nov 2026*"
    assert [f["title"] for f in posts[0]["files"]] == ["Mentions digest, week of 16 Nov - 22 Nov 2026"] * 3
    assert [(state, attempts) for state, attempts, _, _ in digest_rows()] == [("sent", 3)]

    clock.advance(600)  # a restart later the same morning: the period's digest is not posted again
    again = daemon()
    again.sweep()
    again.drain()
    first.sweep()
    first.drain()
    assert len(shared()) == 1
    assert len(digest_rows()) == 1
