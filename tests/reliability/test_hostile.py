"""Hostile input: control sequences, huge, RTL/zero-width, lone surrogates, NUL, broken payload fields.
Each mention is stored or rejected cleanly, never a crash loop, never a Slack ping."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cases import pipeline
from monitor.model import Author, NewMention
from monitor.rules import parse_rules
from tests.reliability.helpers import customer_mentions, query, rules_text, slack_pings
from tests.reliability.test_faults import World

NASTY = ["<!channel>", "<!here>", "<!everyone>", "<@U0ADMIN1>", "<!subteam^S0ALL>", "@channel", "\x00", "\u202e",
         "\u200b", "\ufeff", "\ud800", "\udfff", "\U0001f621", "\ud83d\ude21", "*bold*", "<https://evil.example|x>", "&lt;", "```", "broken"]
hostile_text = st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=20)), max_size=12).map("".join) | \
    st.just("broken " * 5000)
ids = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text, handle=st.text(max_size=30))
def test_ingest_stores_hostile_text_safely(engine, text, handle):
    n = next(ids)
    mention = NewMention(platform="x", kind="mention", external_id=f"h{n}", text=text,
                         author=Author(id=f"a{n}", handle=handle), created_at=datetime(2026, 11, 24, tzinfo=UTC),
                         mentions_brand=True, raw={"text": text})
    ruleset = parse_rules(rules_text(), filename="rules.yaml")
    result = pipeline.ingest(engine, source="x-mentions", batch=[mention], cursor=str(n), ruleset=ruleset,
                             now=datetime(2026, 11, 24, tzinfo=UTC))
    assert result.stored == 1
    with engine.connect() as conn:
        import sqlalchemy as sa

        stored = conn.execute(sa.text("select text from mention where external_id = :e"), {"e": f"h{n}"}).scalar()
        assert stored == pipeline._safe(text) and "\x00" not in stored
        # the payload as fetched, emoji and all; only a lone surrogate (no driver encodes one) is replaced
        raw = conn.execute(sa.text("select raw from mention where external_id = :e"), {"e": f"h{n}"}).scalar()
        raw = json.loads(raw) if isinstance(raw, str) else raw  # SQLite gives the text, PostgreSQL the object
        assert raw == {"text": text.encode("utf-8", "replace").decode("utf-8")}
        assert conn.execute(sa.text("select value from cursor where source = 'x-mentions'")).scalar() == str(n)


def test_hostile_mentions_through_the_sandbox_never_ping_slack(tmp_path):
    world = World(tmp_path)
    try:
        @settings(max_examples=15, deadline=None)
        @given(text=hostile_text)
        def one(text):
            world.tweet(text.replace("\x00", "") + " broken")  # X itself never serves NUL in a tweet
            world.comment(text + " broken")
            statuses = world.poll_all()
            assert set(statuses.values()) <= {"ok", "skipped"}, statuses
            world.daemon.drain()
            world.advance(60)

        one()
        assert len(customer_mentions(world.url)) == world.n
        # the only pings are the ones rules.yaml asks for (on-call group on SLA warnings): none here
        assert slack_pings(world.sandbox) == []
    finally:
        world.close()


def test_wrongly_typed_payload_is_rejected_cursor_kept_and_the_rest_flows(tmp_path):
    world = World(tmp_path)
    try:
        good = world.comment("fine")
        world.poll_all()
        bad = world.comment("broken")
        world.sandbox.graph.comments[bad]["from"] = "not an object"
        cursor = query(world.url, "select value from cursor where source = 'fb-comments'")
        tweets = set()
        for _ in range(5):  # polled again and again: rejected each time, never a crash, X keeps flowing
            tweets.add(world.tweet("broken lamp"))
            assert world.poll_all() == {"x-mentions": "ok", "fb-comments": "bad_payload"}
            world.advance(600)
        assert query(world.url, "select value from cursor where source = 'fb-comments'") == cursor
        stored = {e for _, e in customer_mentions(world.url)}
        assert good in stored and bad not in stored and tweets <= stored
        world.sandbox.graph.comments[bad]["from"] = {"id": "42", "name": "Fixed"}
        world.advance(600)
        assert world.poll_all()["fb-comments"] == "ok"
        assert bad in {e for _, e in customer_mentions(world.url)}
    finally:
        world.close()
