"""Storms end to end (issue 17): sandbox X -> tweepy -> pipeline -> outbox -> slack-sdk -> sandbox Slack at
its default pace (1 chat.postMessage a second per channel, bursts of 20), time driven by the test's clock."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from urllib.parse import quote

import pytest
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier
from sqlmodel import Session, select

from connectors.slack.app import build_app
from monitor.cases.actions import CaseActions
from monitor.delivery import outbox
from monitor.model import Case
from monitor.rules import RulesError, parse_rules
from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings
from tests.conftest import SIMPLE_RULES

SECRET = "storm-signing-secret"


def make_daemon(sandbox, db_url, tmp_path, clock, *, rules_text: str = SIMPLE_RULES):
    rules = parse_rules(rules_text, filename="storm.yaml")
    path = tmp_path / "storm.yaml"
    path.write_text(rules_text, encoding="utf-8")
    # Slack keeps its default pace (1 a second per channel, bursts of 20), refilled by the test's clock only
    sandbox.configure(x_limits={"mentions": (100_000, 900)}, slack_clock_driven=True)
    settings = Settings(_env_file=None)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=rules, sandbox_url=sandbox.url,
                                              clock=clock).items() if k == "x-mentions"}
    return build_daemon(settings=settings, ruleset=rules, rules_path=str(path), db_url=db_url,
                        sandbox_url=sandbox.url, clock=clock, sources=sources, worker="test")


@pytest.fixture
def daemon(sandbox, db_url, tmp_path, clock):
    d = make_daemon(sandbox, db_url, tmp_path, clock)
    yield d
    d.engine.dispose()


def tweets(sandbox, clock, count: int, *, text: str = "@nordlysshop my parcel is late, order {n}",
           start: int = 0, verified: bool = False, followers: int = 321) -> None:
    when = clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sandbox.add_tweets([{
        "tweet": {"id": str(1_900_000_000_000_000_000 + n), "text": text.format(n=n), "author_id": str(800_000 + n),
                  "created_at": when, "conversation_id": str(1_900_000_000_000_000_000 + n), "lang": "en"},
        "author": {"id": str(800_000 + n), "username": f"user{n}", "name": f"User {n}",
                   "public_metrics": {"followers_count": followers}, "verified": verified},
    } for n in range(start, start + count)])


def posts(sandbox):
    return [m for m in sandbox.slack_messages() if m["op"] == "post"]


def top_level(sandbox):
    return [m for m in posts(sandbox) if not m["thread_ts"] and m["channel"] == "cs-alerts"]


def grouped_roots(sandbox):
    return [m for m in top_level(sandbox) if "similar mention" in m["text"]]


def seen_text(message) -> str:
    """What a person reads in a message: its blocks' text where it has blocks, else its text."""
    texts = [b["text"]["text"] for b in message.get("blocks") or [] if b.get("type") == "section" and "text" in b]
    return "\n".join(texts) if texts else message["text"]


def visible_cases(sandbox) -> set[int]:
    """Cases a person can see in Slack: an alert of their own, or their line in a group's thread."""
    seen: set[int] = set()
    with_case = re.compile(r"\*#(\d+)\*")
    for message in posts(sandbox):
        payload = ((message.get("metadata") or {}).get("event_payload") or {})
        if message["metadata"] and message["metadata"].get("event_type") == "mm_alert":
            seen.add(int(payload["case_id"]))
        seen.update(int(n) for n in with_case.findall(seen_text(message)))
    return seen


def refused(sandbox) -> int:
    return sandbox.stats()["requests"].get("POST /api/chat.postMessage", 0) - len(posts(sandbox))


def case_ids(engine) -> set[int]:
    with Session(engine) as s:
        return set(s.exec(select(Case.id)).all())


def test_a_burst_of_300_is_all_visible_within_30_seconds_and_nothing_is_refused(sandbox, daemon, clock):
    tweets(sandbox, clock, 300)
    daemon.poll("x-mentions")
    started = clock.now()
    daemon.drain()
    while case_ids(daemon.engine) - visible_cases(sandbox) and clock.now() - started < timedelta(seconds=30):
        clock.advance(1)
        daemon.drain()
    assert len(case_ids(daemon.engine)) == 300
    assert case_ids(daemon.engine) == visible_cases(sandbox)
    assert clock.now() - started <= timedelta(seconds=30)
    assert refused(sandbox) == 0, "Slack refused a request at the default pacing"
    # three alerts of their own, then one grouped message updated in place with the count
    assert len(top_level(sandbox)) == 4
    [root] = grouped_roots(sandbox)
    updates = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == root["ts"]]
    assert seen_text(updates[-1]).startswith("❗ *297 similar mentions* for rule `late-order`")
    assert re.search(r"\*Newest 10:\*\n❗ #300 @user\d+ \(high\): @nordlysshop my parcel is late, order \d+\n❗ #299 ",
                     seen_text(updates[-1]))
    # the thread: several cases to a message, each line naming its case, with that case's buttons
    lines = [m for m in posts(sandbox) if m["thread_ts"] == root["ts"]]
    assert len(lines) <= 13
    first = lines[0]["blocks"]
    assert re.fullmatch(r"❗ \*#4\* x @user\d+ \(high\): @nordlysshop my parcel is late, order \d+",
                        first[0]["text"]["text"])
    assert [e["action_id"] for e in first[1]["elements"]] == ["mm_claim", "mm_reply", "mm_resolve"]
    assert first[1]["elements"][0]["value"] == "4"
    assert all(len(m["blocks"]) <= 50 for m in lines)


def test_the_first_max_alerts_go_out_alone_and_a_group_of_one_is_a_plain_alert(sandbox, daemon, clock):
    tweets(sandbox, clock, 4)
    daemon.poll("x-mentions")
    daemon.drain()
    alerts = top_level(sandbox)
    assert len(alerts) == 4 and not grouped_roots(sandbox), "max_alerts 3: three alone, and no group of one"
    assert alerts[3]["text"] == "❗ HIGH X mention from @user3: @nordlysshop my parcel is late, order 3"

    tweets(sandbox, clock, 1, start=4)
    clock.advance(5)
    daemon.poll("x-mentions")
    daemon.drain()
    updated = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == alerts[3]["ts"]]
    assert seen_text(updated[-1]).startswith("❗ *2 similar mentions* for rule `late-order`")
    thread = [seen_text(m) for m in posts(sandbox) if m["thread_ts"] == alerts[3]["ts"]]
    assert thread == ["❗ *#4* x @user3 (high): @nordlysshop my parcel is late, order 3\n"
                      "❗ *#5* x @user4 (high): @nordlysshop my parcel is late, order 4"]


def test_verified_and_critical_authors_are_never_grouped_unless_rules_say_so(sandbox, db_url, tmp_path, clock):
    rules = SIMPLE_RULES.replace("alert: {channel: alerts, severity: high, sla: 30m}\n  - name: urgent",
                                 "alert: {channel: alerts, severity: critical, sla: 30m}\n  - name: urgent")
    daemon = make_daemon(sandbox, db_url, tmp_path, clock, rules_text=rules)
    tweets(sandbox, clock, 6, text="@nordlysshop my lamp is broken, order {n}", verified=True)
    tweets(sandbox, clock, 6, start=10)  # late-order, now critical
    daemon.poll("x-mentions")
    daemon.drain()
    for _ in range(5):
        clock.advance(1)
        daemon.drain()
    assert len(top_level(sandbox)) == 12 and not grouped_roots(sandbox)
    assert sum("✓ verified" in json.dumps(m["blocks"], ensure_ascii=False) for m in top_level(sandbox)) == 6
    daemon.engine.dispose()


def test_grouping_never_can_be_emptied_and_a_wrong_value_is_a_clear_error(sandbox, db_url, tmp_path, clock):
    rules = SIMPLE_RULES.replace("grouping: {window: 2m, max_alerts: 3}",
                                 "grouping: {window: 2m, max_alerts: 3, never: []}")
    daemon = make_daemon(sandbox, db_url, tmp_path, clock, rules_text=rules)
    tweets(sandbox, clock, 6, text="@nordlysshop my lamp is broken, order {n}", verified=True)
    daemon.poll("x-mentions")
    daemon.drain()
    assert len(top_level(sandbox)) == 4 and len(grouped_roots(sandbox)) == 1
    daemon.engine.dispose()
    with pytest.raises(RulesError) as caught:
        parse_rules(SIMPLE_RULES.replace("grouping: {window: 2m, max_alerts: 3}",
                                         "grouping: {window: 2m, max_alerts: 3, never: [vips]}"), filename="r.yaml")
    assert "grouping.never" in str(caught.value) and "vips" in str(caught.value)


def click(app, action_id: str, *, user: str, value: str, channel: str, ts: str):
    payload = {
        "type": "block_actions", "api_app_id": "A0APP", "token": "legacy", "trigger_id": "1337.42.abc",
        "user": {"id": user, "username": user.lower(), "team_id": "T0SANDBOX1"},
        "team": {"id": "T0SANDBOX1", "domain": "nordlys"},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "channel": {"id": channel, "name": channel}, "message": {"type": "message", "ts": ts, "text": "lines"},
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [{"action_id": action_id, "block_id": f"mm_actions:{value}", "action_ts": "1.1",
                     "type": "button", "value": value}],
    }
    body = "payload=" + quote(json.dumps(payload))
    stamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
    return app.dispatch(BoltRequest(body=body, headers={
        "content-type": ["application/x-www-form-urlencoded"], "x-slack-signature": [signature],
        "x-slack-request-timestamp": [stamp]}))


def test_a_member_of_a_group_is_claimed_and_resolved_from_its_line_and_the_notes_name_it(sandbox, daemon, clock):
    tweets(sandbox, clock, 6)
    daemon.poll("x-mentions")
    daemon.drain()
    [root] = grouped_roots(sandbox)
    line = next(m for m in posts(sandbox) if m["thread_ts"] == root["ts"])
    buttons = {b["block_id"]: b["elements"] for b in line["blocks"] if b["type"] == "actions"}
    assert set(buttons) == {"mm_actions:4", "mm_actions:5", "mm_actions:6"}
    actions = CaseActions(engine=daemon.engine, rules=lambda: daemon.ruleset, clock=clock)
    app = build_app(token="xoxb-storm", actions=actions, signing_secret=SECRET, base_url=sandbox.url, clock=clock,
                    process_before_response=True)
    click(app, "mm_claim", user="U0AGENT", value="5", channel=line["channel"], ts=line["ts"])
    click(app, "mm_resolve", user="U0AGENT", value="6", channel=line["channel"], ts=line["ts"])
    clock.advance(2)
    daemon.drain()
    with Session(daemon.engine) as s:
        assert s.get(Case, 5).assignee == "U0AGENT"
        assert s.get(Case, 6).state == "resolved"
        assert s.get(Case, 4).assignee == "" and s.get(Case, 4).state == "open"
    notes = "\n".join(seen_text(m) for m in posts(sandbox) if m["thread_ts"] == root["ts"])
    assert "<@U0AGENT> claimed case #5 (@user4)." in notes
    assert "<@U0AGENT> resolved case #6 (@user5)." in notes
    assert "claimed this case" not in notes


def test_breach_lines_in_a_group_thread_say_whose_case_they_are(sandbox, daemon, clock):
    tweets(sandbox, clock, 5)
    daemon.poll("x-mentions")
    daemon.drain()
    [root] = grouped_roots(sandbox)
    clock.advance(timedelta(minutes=31))
    daemon.sweep()
    daemon.drain()
    notes = [seen_text(m) for m in posts(sandbox) if m["thread_ts"] == root["ts"]]
    breaches = [line for note in notes for line in note.split("\n") if "target was missed" in line]
    assert sorted(b.split(":")[0] for b in breaches) == ["Case #4 (@user3)", "Case #5 (@user4)"]


def test_a_catch_up_after_crashes_is_bounded_and_says_what_is_left(sandbox, daemon, clock):
    tweets(sandbox, clock, 300)
    daemon.poll("x-mentions")  # stored and queued; the crashed daemon never delivered them
    sandbox.slack.buckets["cs-alerts"] = (0.0, sandbox.clock.now())  # and spent Slack's burst before it died
    daemon.run_once()
    asked = sandbox.stats()["requests"].get("POST /api/chat.postMessage", 0)
    assert refused(sandbox) <= 3, "one refused request (and slack_sdk's two short retries), then the pass gives up"
    assert asked <= 3 + 1
    left = outbox.backlog(daemon.engine)
    assert left > 0
    assert daemon.catch_up_summary() == (f"{left:,} Slack messages are still queued in the outbox; "
                                         "a running daemon delivers them at Slack's pace.")
    for _ in range(40):  # a running daemon then catches up at Slack's pace
        clock.advance(1)
        daemon.drain()
    assert case_ids(daemon.engine) == visible_cases(sandbox)


def test_a_spike_alert_names_its_topics_and_examples_and_jumps_the_queue(sandbox, db_url, tmp_path, clock):
    rules = SIMPLE_RULES.replace(
        "grouping: {window: 2m, max_alerts: 3}",
        "grouping: {window: 2m, max_alerts: 3}\nspike: {window: 15m, history: 3h, k: 3, min_count: 10, channel: alerts}")
    daemon = make_daemon(sandbox, db_url, tmp_path, clock, rules_text=rules)
    quiet = clock.now() - timedelta(hours=3)
    for n in range(12):  # a quiet history: one mention every 15 minutes
        when = (quiet + timedelta(minutes=15 * n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        sandbox.add_tweets([{"tweet": {"id": str(1_800_000_000_000_000_000 + n), "text": "@nordlysshop nice lamps",
                                       "author_id": str(900_000 + n), "created_at": when, "lang": "en"},
                             "author": {"id": str(900_000 + n), "username": f"fan{n}", "name": f"Fan {n}"}}])
    edge = (clock.now() - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for n in range(5):  # exactly one window old: the window before, not "the last 15 min"
        sandbox.add_tweets([{"tweet": {"id": str(1_850_000_000_000_000_000 + n), "text": "@nordlysshop love the shop",
                                       "author_id": str(950_000 + n), "created_at": edge, "lang": "en"},
                             "author": {"id": str(950_000 + n), "username": f"edge{n}", "name": f"Edge {n}"}}])
    tweets(sandbox, clock, 40, text="@nordlysshop the lamp I ordered arrived broken and I want a refund, order {n}")
    daemon.poll("x-mentions")
    daemon.sweep()  # the spike is queued behind 40 alerts and lines
    daemon.drain()
    top = top_level(sandbox)
    spike = next(i for i, m in enumerate(top) if "Mention spike" in m["text"])
    assert spike == 0, "the spike alert goes first"
    text = top[0]["text"]
    assert text.startswith(":chart_with_upwards_trend: Mention spike: 40 mentions in the last 15 min")
    assert "Mostly about: " in text and re.search(r"(damaged|refund) \(\d+\)", text)
    examples = re.findall(r"\n>@user\d+: @nordlysshop the lamp I ordered arrived broken", text)
    assert len(examples) == 2
    daemon.engine.dispose()


def test_a_channel_takes_at_most_its_budget_of_alerts_across_rules_and_verified_still_go_alone(
        sandbox, db_url, tmp_path, clock):
    rules = SIMPLE_RULES.replace("grouping: {window: 2m, max_alerts: 3}",
                                 "grouping: {window: 2m, max_alerts: 3, channel_max_alerts: 4}")
    daemon = make_daemon(sandbox, db_url, tmp_path, clock, rules_text=rules)
    tweets(sandbox, clock, 2, text="@nordlysshop where is my invoice for order {n}")  # business-hours-complaint
    tweets(sandbox, clock, 2, start=2)  # late-order
    tweets(sandbox, clock, 3, start=4, text="@nordlysshop my lamp is broken, order {n}")  # urgent
    tweets(sandbox, clock, 1, start=7, text="@nordlysshop my lamp is broken, order {n}", verified=True)
    daemon.poll("x-mentions")
    daemon.drain()
    for _ in range(5):
        clock.advance(1)
        daemon.drain()
    assert len(case_ids(daemon.engine)) == 8 and case_ids(daemon.engine) == visible_cases(sandbox)
    with Session(daemon.engine) as s:
        alone = [c for c in s.exec(select(Case).order_by(Case.id)).all() if c.grouped_into is None]
    # four alerts of their own across three rules, then the channel is full; the verified author still goes alone
    assert [(c.rule, c.author_handle) for c in alone] == [
        ("business-hours-complaint", "user0"), ("business-hours-complaint", "user1"), ("late-order", "user2"),
        ("late-order", "user3"), ("urgent", "user7")]
    [root] = grouped_roots(sandbox)
    updates = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == root["ts"]]
    assert seen_text(updates[-1]).startswith("❗ *3 similar mentions* for rule `urgent`")
    thread = [seen_text(m) for m in posts(sandbox) if m["thread_ts"] == root["ts"]]
    assert thread[0] == "\n".join(f"❗ *#{n + 1}* x @user{n} (high): @nordlysshop my lamp is broken, order {n}"
                                   for n in (4, 5, 6))
    verified = [m for m in top_level(sandbox) if "@user7" in m["text"]]
    assert len(verified) == 1 and "✓ verified" in json.dumps(verified[0]["blocks"], ensure_ascii=False)
    assert refused(sandbox) == 0
    daemon.engine.dispose()


def test_a_wrong_channel_budget_is_a_clear_error():
    with pytest.raises(RulesError) as caught:
        parse_rules(SIMPLE_RULES.replace("grouping: {window: 2m, max_alerts: 3}",
                                         "grouping: {window: 2m, max_alerts: 3, channel_max_alerts: 0}"),
                    filename="r.yaml")
    assert str(caught.value) == "r.yaml:25:59: grouping.channel_max_alerts: must be at least 1, got 0"


def test_a_claimed_member_line_says_who_has_it_and_offers_its_next_actions_not_claim(sandbox, db_url, tmp_path,
                                                                                      clock):
    rules = SIMPLE_RULES.replace("acknowledge: {template: move_to_dm, private_template: move_to_dm_private, mode: auto}",
                                 "acknowledge: {template: move_to_dm, private_template: move_to_dm_private, "
                                 "mode: approve}")
    daemon = make_daemon(sandbox, db_url, tmp_path, clock, rules_text=rules)
    tweets(sandbox, clock, 6, text="@nordlysshop my lamp is broken, order {n}")
    daemon.poll("x-mentions")
    daemon.drain()
    [root] = grouped_roots(sandbox)
    line = next(m for m in posts(sandbox) if m["thread_ts"] == root["ts"])
    actions_of = lambda message: {b["block_id"]: [e["action_id"] for e in b["elements"]]  # noqa: E731
                                  for b in message["blocks"] if b["type"] == "actions"}
    assert actions_of(line)["mm_actions:5"] == ["mm_claim", "mm_ack", "mm_reply", "mm_resolve"]
    actions = CaseActions(engine=daemon.engine, rules=lambda: daemon.ruleset, clock=clock)
    app = build_app(token="xoxb-storm", actions=actions, signing_secret=SECRET, base_url=sandbox.url, clock=clock,
                    process_before_response=True)
    click(app, "mm_claim", user="U0AGENT", value="5", channel=line["channel"], ts=line["ts"])
    clock.advance(2)
    daemon.drain()
    [edited] = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == line["ts"]]
    sections = {b["block_id"]: b["text"]["text"] for b in edited["blocks"] if b["type"] == "section"}
    assert sections["mm_line:5"] == ("❗ *#5* x @user4 (high): @nordlysshop my lamp is broken, order 4\n"
                                     "↳ Claimed by <@U0AGENT>")
    assert actions_of(edited)["mm_actions:5"] == ["mm_ack", "mm_reply", "mm_resolve"]
    # the other members' lines are as they were, Claim and all
    assert sections["mm_line:4"] == "❗ *#4* x @user3 (high): @nordlysshop my lamp is broken, order 3"
    assert actions_of(edited)["mm_actions:4"] == actions_of(edited)["mm_actions:6"] == [
        "mm_claim", "mm_ack", "mm_reply", "mm_resolve"]
    # and the grouped message's list of newest members says it too
    root_edits = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == root["ts"]]
    assert "❗ #5 @user4 (high · Claimed by <@U0AGENT>)" in seen_text(root_edits[-1])

    click(app, "mm_resolve", user="U0AGENT", value="6", channel=line["channel"], ts=line["ts"])
    clock.advance(2)
    daemon.drain()
    edited = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == line["ts"]][-1]
    sections = {b["block_id"]: b["text"]["text"] for b in edited["blocks"] if b["type"] == "section"}
    assert sections["mm_line:6"].endswith("order 5\n↳ Resolved")
    assert "mm_actions:6" not in actions_of(edited), "a resolved case offers nothing more"
    assert actions_of(edited)["mm_actions:5"] == ["mm_ack", "mm_reply", "mm_resolve"]
    assert refused(sandbox) == 0
    daemon.engine.dispose()


def test_a_refused_edit_does_not_hold_the_channels_new_lines(sandbox, daemon, clock):
    tweets(sandbox, clock, 6)
    daemon.poll("x-mentions")
    daemon.drain()
    [root] = grouped_roots(sandbox)
    # Slack refuses the next chat.update (its own limit, Retry-After 30 s); chat.postMessage is not affected
    sandbox.add_fault(platform="slack", path="chat.update", status=429)
    tweets(sandbox, clock, 1, start=6)
    clock.advance(5)
    daemon.poll("x-mentions")
    daemon.drain()  # case 7's line, then the refused edit of the grouped message
    assert refused(sandbox) == 0 and 7 in visible_cases(sandbox)
    tweets(sandbox, clock, 2, start=7)
    clock.advance(5)
    daemon.poll("x-mentions")
    daemon.drain()
    clock.advance(1)
    daemon.drain()
    assert {8, 9} <= visible_cases(sandbox), "the new cases' lines went out while the edit waits"
    edits = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == root["ts"]]
    assert not any(seen_text(m).startswith("❗ *6 similar mentions*") for m in edits)
    clock.advance(30)
    daemon.drain()
    edits = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == root["ts"]]
    assert seen_text(edits[-1]).startswith("❗ *6 similar mentions* for rule `late-order`")


def test_the_daemons_slack_client_hands_a_429_to_the_outbox_instead_of_sleeping_on_it(sandbox):
    from connectors.base import RateLimited
    from monitor.runtime.wiring import build_notifier

    notifier = build_notifier(settings=Settings(_env_file=None), sandbox_url=sandbox.url)
    sandbox.configure(slack_burst=1, slack_refill_per_s=2.0)  # a second message in the same instant: 429, wait 1 s
    notifier.post(channel="cs-alerts", text="one")
    started = time.monotonic()
    with pytest.raises(RateLimited):
        notifier.post(channel="cs-alerts", text="two")
    assert time.monotonic() - started < 1, "slack_sdk slept on the 429 instead of telling the outbox"
    assert sandbox.stats()["requests"]["POST /api/chat.postMessage"] == 2
