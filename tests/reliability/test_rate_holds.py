"""A rate limit is learnt once: its hold is kept in the database (SourceHealth), so another replica
or a restarted process waits for the platform's reset instead of collecting another 429.
Sources and Slack channels alike; SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import drop_schema, postgres_url_or_skip
from tests.reliability.helpers import BRAND_X_USER_ID, alert_case_ids
from tests.reliability.test_faults import World

X_MENTIONS = f"GET /2/users/{BRAND_X_USER_ID}/mentions".replace(BRAND_X_USER_ID, ":id")


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path):
    url = ""
    if request.param == "postgresql":
        from monitor.store import make_engine

        url = postgres_url_or_skip()
        engine = make_engine(url)
        drop_schema(engine)
        engine.dispose()
    w = World(tmp_path, url=url)
    yield w
    w.close()


def slack_posts(world: World) -> int:
    return sum(n for endpoint, n in world.sandbox.stats()["requests"].items() if "chat.postMessage" in endpoint)


def test_a_sources_rate_limit_holds_for_another_replica_and_after_a_restart(world):
    world.sandbox.add_fault(platform="x", path="/2/users", status=429)
    first = world.tweet()
    assert world.daemon.poll("x-mentions").status == "rate_limited"
    asked = world.requests(X_MENTIONS)
    reset = world.daemon._health("x-mentions").retry_at
    world.advance(60)  # the first replica's lease has expired: anyone may take the source
    other = world.start(worker="replica-b")
    restarted = world.start()
    try:
        for _ in range(3):
            assert other.poll("x-mentions").status == "skipped"
            assert restarted.poll("x-mentions").status == "skipped"
            world.advance(120)
        assert world.requests(X_MENTIONS) == asked, "nobody asks X again before the reset it announced"
        world.advance((reset - world.clock.now()).total_seconds() + 1)
        assert other.poll("x-mentions").status == "ok"
        assert first in world.stored()
        assert world.requests(X_MENTIONS) == asked + 1
    finally:
        other.engine.dispose()
        restarted.engine.dispose()


def test_slacks_retry_after_holds_the_channel_for_a_restarted_process_and_another_replica(world):
    world.sandbox.add_fault(platform="slack", path="/api/chat.postMessage", status=429, times=1)
    world.tweet()
    world.poll_all()
    world.daemon.drain()
    assert alert_case_ids(world.sandbox) == []
    asked = slack_posts(world)
    assert asked == 1

    world.daemon.engine.dispose()
    world.daemon = world.start()  # restarted seconds later, with a new case waiting for the same channel
    other = world.start(worker="replica-b")
    try:
        world.tweet()
        world.advance(5)
        world.poll_all()
        world.daemon.drain()
        other.drain()
        world.advance(20)  # 25 s of Slack's Retry-After: 30 gone
        world.daemon.drain()
        other.drain()
        assert slack_posts(world) == asked, "the channel's hold is kept: no request collects another 429"
        assert alert_case_ids(world.sandbox) == []
        world.advance(6)
        world.daemon.drain()
        other.drain()
        assert len(alert_case_ids(world.sandbox)) == 2
    finally:
        other.engine.dispose()
