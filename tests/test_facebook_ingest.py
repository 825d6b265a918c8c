"""Facebook ingest that loses nothing (issue #21): overlap reads, the reconciliation sweep, through
the sandbox's late-visible comments and same-second messages, stored by the daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.facebook import RECONCILE_EVERY_S, FacebookSource
from connectors.sandbox import Sandbox
from monitor.cases import pipeline
from monitor.clock import SettableClock
from monitor.runtime.daemon import Daemon
from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings
from monitor.store import get_cursor, transaction
from tests.sandbox_fixtures import PAGE_ID

POST_ID = f"{PAGE_ID}_122100000000000777"


@pytest.fixture
def daemon(sandbox: Sandbox, simple_rules, simple_rules_file: Path, clock: SettableClock, tmp_path: Path):
    settings = Settings(_env_file=None)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=simple_rules, sandbox_url=sandbox.url,
                                              clock=clock).items() if k in ("fb-comments", "fb-messages")}
    d = build_daemon(settings=settings, ruleset=simple_rules, rules_path=str(simple_rules_file),
                     db_url=f"sqlite:///{tmp_path / 'mm.db'}", sandbox_url=sandbox.url, clock=clock,
                     sources=sources, worker="test")
    yield d
    d.engine.dispose()


def _stored(daemon: Daemon, kind: str) -> list[str]:
    with daemon.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(
            "select text from mention where platform = 'facebook' and kind = :kind order by id"), {"kind": kind})]


def _comment(sandbox: Sandbox, text: str, n: int) -> str:
    [comment_id] = sandbox.add_fb_comments([{"message": text, "post_id": POST_ID,
                                             "from": {"id": f"7100{n:04d}", "name": f"Kari {n}"}}])
    return comment_id


def test_a_comment_visible_ten_minutes_late_is_stored_on_the_next_poll(sandbox: Sandbox, daemon: Daemon,
                                                                       clock: SettableClock) -> None:
    """The issue's reproduction: three comments read, then one dated 10 minutes back."""
    sandbox.graph.add_post(post_id=POST_ID, message="Autumn sale")
    for n in range(3):
        _comment(sandbox, f"question {n}", n)
        clock.advance(20)
    daemon.poll("fb-comments")
    assert _stored(daemon, "comment") == ["question 0", "question 1", "question 2"]
    clock.advance(60)
    sandbox.configure(fb_late_comments=1.0, fb_late_by_s=600)  # released from moderation just now
    late_id = _comment(sandbox, "my order never came and nobody answers", 9)
    assert sandbox.graph.comments[late_id]["_epoch"] < sandbox.graph.comments[
        next(iter(sandbox.graph.comments))]["_epoch"]  # it sorts before everything already read
    daemon.poll("fb-comments")
    assert _stored(daemon, "comment")[-1] == "my order never came and nobody answers"
    for _ in range(4):
        clock.advance(60)
        daemon.poll("fb-comments")
    assert len(_stored(daemon, "comment")) == 4  # stored once, however often it is read again


def test_a_late_comment_that_does_not_wake_its_post_is_stored_by_the_hourly_sweep(
        sandbox: Sandbox, daemon: Daemon, clock: SettableClock) -> None:
    sandbox.graph.add_post(post_id=POST_ID, message="Autumn sale")
    _comment(sandbox, "first question", 0)
    clock.advance(10)  # read well after its second: nothing to check again
    daemon.poll("fb-comments")
    clock.advance(60)
    sandbox.configure(fb_late_comments=1.0, fb_late_by_s=3 * 3600, fb_late_wakes_post=False)
    _comment(sandbox, "this one was held for review for three hours", 1)
    for _ in range(3):  # polls alone do not see it: the post shows no new activity
        clock.advance(60)
        daemon.poll("fb-comments")
    assert _stored(daemon, "comment") == ["first question"]
    clock.advance(RECONCILE_EVERY_S)
    daemon.poll("fb-comments")
    assert _stored(daemon, "comment") == ["first question", "this one was held for review for three hours"]
    reads = sandbox.stats()["requests"]["GET /:id/comments"]
    clock.advance(60)
    daemon.poll("fb-comments")
    assert sandbox.stats()["requests"]["GET /:id/comments"] == reads  # a quiet Page costs the feed read only


def test_the_sweep_reaches_a_post_behind_five_hundred_busier_ones(sandbox: Sandbox, daemon: Daemon,
                                                                   clock: SettableClock) -> None:
    """A busy Page: 510 posts active in the last day.  A comment held for review on the quietest
    of them is stored by the sweep (it read only the 500 most recently active before)."""
    now = clock.now().timestamp()
    posts = [sandbox.graph.add_post(post_id=f"{PAGE_ID}_1221000000{n:05d}", created_time=now - 72_000 + n * 140)
             for n in range(510)]
    sandbox.add_fb_comments([{"message": f"question {n}", "post_id": post_id, "created_time": now - 72_000 + n * 140,
                              "from": {"id": f"7200{n:04d}", "name": f"Liv {n}"}} for n, post_id in enumerate(posts)])
    daemon.poll("fb-comments")
    clock.advance(60)
    sandbox.configure(fb_late_comments=1.0, fb_late_by_s=3 * 3600, fb_late_wakes_post=False)
    [held] = sandbox.add_fb_comments([{"message": "held for review on the quietest post", "post_id": posts[0],
                                       "from": {"id": "72009999", "name": "Ola"}}])
    sandbox.configure(fb_late_comments=0.0)
    clock.advance(RECONCILE_EVERY_S)
    for _ in range(5):  # the sweep reads ten posts a fetch, twenty fetches a poll
        daemon.poll("fb-comments")
    assert "held for review on the quietest post" in _stored(daemon, "comment")


def test_a_message_in_the_same_second_as_the_last_read_is_stored(sandbox: Sandbox, daemon: Daemon,
                                                                 clock: SettableClock) -> None:
    """A burst larger than one fetch; meanwhile a message lands in a conversation already read, in
    the second it was read; later activity elsewhere moves the listing past that second."""
    daemon.poll("fb-messages")  # the monitor is running
    clock.advance(60)
    sandbox.configure(fb_same_second_messages=True)
    people = [{"id": f"6300{n:04d}", "name": f"Per {n}"} for n in range(14)]
    sandbox.add_fb_messages([{"from": p, "message": f"hello from {p['name']}"} for p in people])
    source: FacebookSource = daemon.sources["fb-messages"].connector
    # one step of the daemon's poll loop, by hand, so that the message lands between two fetches
    first = source.fetch(kind="message", cursor=_cursor(daemon, "fb-messages"))
    assert first.more  # 14 conversations: one fetch reads 10, the rest are pending
    read_person = first.mentions[0].author.id
    pipeline.ingest(daemon.engine, source="fb-messages", batch=first.mentions, cursor=first.cursor,
                    ruleset=daemon.ruleset, now=clock.now(), policies=daemon.policies)
    sandbox.add_fb_messages([{"from": {"id": read_person, "name": "Per"}, "message": "my parcel is broken"}])
    clock.advance(2)
    sandbox.configure(fb_same_second_messages=False)
    sandbox.add_fb_messages([{"from": {"id": "63009999", "name": "Ola"}, "message": "another question"}])
    daemon.poll("fb-messages")
    for _ in range(3):
        clock.advance(60)
        daemon.poll("fb-messages")
    stored = _stored(daemon, "message")
    assert "my parcel is broken" in stored
    assert len(stored) == len(set(stored)) == 16


def _cursor(daemon: Daemon, name: str) -> str:
    with transaction(daemon.engine) as s:
        return get_cursor(s, name)


def test_the_daemons_own_scheduler_runs_the_sweep_once_the_clock_says_an_hour_has_passed(
        sandbox: Sandbox, simple_rules_file: Path, clock: SettableClock, tmp_path: Path) -> None:
    """Not a poll by hand: the daemon's APScheduler jobs poll every second (real time), the sweep is
    due when the daemon's clock, moved by the test, says RECONCILE_EVERY_S have passed."""
    from monitor.rules import load_rules

    rules_path = tmp_path / "every-second.yaml"
    rules_path.write_text(simple_rules_file.read_text(encoding="utf-8").replace("every: 60s", "every: 1s"),
                          encoding="utf-8")
    ruleset = load_rules(rules_path)
    settings = Settings(_env_file=None)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=ruleset, sandbox_url=sandbox.url,
                                              clock=clock).items() if k == "fb-comments"}
    daemon = build_daemon(settings=settings, ruleset=ruleset, rules_path=str(rules_path),
                          db_url=f"sqlite:///{tmp_path / 'mm.db'}", sandbox_url=sandbox.url, clock=clock,
                          sources=sources, worker="test")
    sandbox.graph.add_post(post_id=POST_ID, message="Autumn sale")
    _comment(sandbox, "first question", 0)
    clock.advance(10)

    def feed_reads() -> int:
        return sandbox.stats()["requests"].get("GET /:page_id/feed", 0)

    daemon.start()
    try:
        _wait(lambda: _stored(daemon, "comment") == ["first question"])
        clock.advance(60)
        sandbox.configure(fb_late_comments=1.0, fb_late_by_s=3 * 3600, fb_late_wakes_post=False)
        _comment(sandbox, "this one was held for review for three hours", 1)
        reads = feed_reads()
        _wait(lambda: feed_reads() >= reads + 3)  # three scheduled polls: none of them sees it
        assert _stored(daemon, "comment") == ["first question"]
        clock.advance(RECONCILE_EVERY_S)
        _wait(lambda: len(_stored(daemon, "comment")) == 2)
        assert _stored(daemon, "comment")[-1] == "this one was held for review for three hours"
    finally:
        daemon.stop()
        daemon.engine.dispose()


def _wait(check, *, within_s: float = 20.0) -> None:
    """Wait for the daemon's scheduler threads (real seconds between polls); the deadline only
    bounds a failure."""
    import time

    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "the daemon's scheduled polls did not get there in time"
        time.sleep(0.05)
