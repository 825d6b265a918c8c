"""The case follows the customer into private messages (issue #19), end to end through the sandbox:
tweepy / facebook-sdk -> pipeline -> outbox -> slack-sdk, and the Slack Reply… form through slack-bolt."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_sdk.signature import SignatureVerifier
from sqlmodel import Session, select

from connectors.slack.app import build_app
from monitor.cases.actions import CaseActions
from monitor.model import Case, Mention, Outbox, OutboxKind
from monitor.report.kpis import build_report
from monitor.report.render import summary_text, to_dict
from monitor.rules import parse_rules
from tests.conftest import SIMPLE_RULES
from tests.test_acknowledge import fb_comment, make_daemon
from tests.test_slack_flow import author_id, thread, top_level, tweet

SECRET = "dm-test-signing-secret"
APPROVER = "U0APPROVER1"
RULES = parse_rules(SIMPLE_RULES.replace(
    "  - {name: fb-comments,", "  - {name: x-dms, platform: x, kind: dm, every: 60s}\n  - {name: fb-comments,"))


@pytest.fixture
def x_daemon(sandbox, db_url, simple_rules_file, clock):
    sandbox.configure(x_limits={"dm_events": (1000, 900)})
    daemon = make_daemon(sandbox, db_url, RULES, simple_rules_file, clock, names=("x-mentions", "x-dms"))
    yield daemon
    daemon.engine.dispose()


@pytest.fixture
def fb_daemon(sandbox, db_url, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, RULES, simple_rules_file, clock, names=("fb-comments", "fb-messages"))
    yield daemon
    daemon.engine.dispose()


def slack_app(daemon, sandbox, clock) -> App:
    actions = CaseActions(engine=daemon.engine, rules=lambda: RULES, clock=clock, policies=daemon.policies)
    return build_app(token="xoxb-dm-test", actions=actions, signing_secret=SECRET, base_url=sandbox.url,
                     approvers=[APPROVER], clock=clock, process_before_response=True)


def _signed(payload: dict[str, Any]) -> BoltRequest:
    body = "payload=" + quote(json.dumps(payload))
    stamp = str(int(time.time()))  # Bolt checks the signature's age against the real clock
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
    return BoltRequest(body=body, headers={"content-type": ["application/x-www-form-urlencoded"],
                                           "x-slack-signature": [signature], "x-slack-request-timestamp": [stamp]})


def open_reply_form(app: App, sandbox, *, case_id: int, alert_ts: str) -> dict[str, Any]:
    """Click Reply… on the alert; the modal Slack was asked to open."""
    app.dispatch(_signed({
        "type": "block_actions", "trigger_id": sandbox.slack.issue_trigger(user=APPROVER, channel="cs-alerts"), "user": {"id": APPROVER}, "team": {"id": "T0SANDBOX1"},
        "channel": {"id": "cs-alerts"}, "message": {"ts": alert_ts},
        "actions": [{"action_id": "mm_reply", "type": "button", "value": str(case_id)}]}))
    return sandbox.slack_modals()[-1]


def submit_reply(app: App, modal: dict[str, Any], *, text: str, where: str | None) -> None:
    values: dict[str, Any] = {"mm_reply_text": {"text": {"type": "plain_text_input", "value": text}}}
    if where is not None:
        values["mm_reply_where"] = {"where": {"type": "radio_buttons", "selected_option": {"value": where}}}
    app.dispatch(_signed({"type": "view_submission", "user": {"id": APPROVER}, "team": {"id": "T0SANDBOX1"},
                          "view": {"id": modal["id"], "type": "modal", "callback_id": "mm_reply_modal",
                                   "private_metadata": modal["private_metadata"], "state": {"values": values}}}))


def where_options(modal: dict[str, Any]) -> list[str]:
    return [o["value"] for b in modal["blocks"] if b.get("block_id") == "mm_reply_where"
            for o in b["element"]["options"]]


def context_text(modal: dict[str, Any]) -> str:
    return " ".join(e["text"] for b in modal["blocks"] if b["type"] == "context" for e in b["elements"])


def ephemerals(sandbox) -> list[str]:
    return [m["text"] for m in sandbox.slack_messages() if m["op"] == "ephemeral"]


def kpis(daemon, clock) -> dict[str, Any]:
    with Session(daemon.engine) as s:
        return to_dict(build_report(s, since=clock.now() - timedelta(days=1), until=clock.now() + timedelta(seconds=1)))


def test_x_complaint_hand_off_customer_dm_and_the_agents_dm_reply_from_slack(sandbox, x_daemon, clock):
    daemon = x_daemon
    tweet(sandbox, clock, 1, "@nordlysshop my lamp arrived broken", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    [alert] = top_level(sandbox)
    [public] = [p for p in sandbox.x_posts() if p["kind"] == "reply"]  # the automatic hand-off, with the DM link
    assert public["direct_message_deep_link"].endswith(f"recipient_id={daemon.ruleset.brand.x_user_id}")
    with Session(daemon.engine) as s:
        case_id = s.exec(select(Case)).one().id
    app = slack_app(daemon, sandbox, clock)

    # before the customer writes in private, X allows no DM: the form says so and offers none
    modal = open_reply_form(app, sandbox, case_id=case_id, alert_ts=alert["ts"])
    assert where_options(modal) == []
    assert "@anna has not written to Nordlys Shop in DM yet" in context_text(modal)
    assert kpis(daemon, clock)["handoff"] == {"handed_off": 1, "moved_to_dm": 0, "percent": 0.0,
                                              "median_seconds_to_first_dm": None, "resolved_in_dm": 0}

    clock.advance(timedelta(minutes=12))
    sandbox.add_x_dms([{"text": "Order 4411, the lamp base is cracked", "sender": {"id": author_id("anna"),
                                                                                    "username": "anna"}}])
    daemon.poll("x-dms")
    daemon.drain()
    with Session(daemon.engine) as s:
        [case] = s.exec(select(Case)).all()  # the DM continues the public case: no second case
        dm = s.exec(select(Mention).where(Mention.kind == "dm")).one()
        assert dm.case_id == case.id and case.moved_to_dm and case.mention_count == 2
    assert len(top_level(sandbox)) == 1
    [note] = [m for m in thread(sandbox, alert["ts"]) if "Order 4411" in m["text"]]
    assert note["text"].startswith("🔒 private message from @anna")
    assert not note.get("reply_broadcast")
    assert not [m for m in sandbox.slack_messages() if "Order 4411" in m["text"] and m["thread_ts"] != alert["ts"]]
    assert kpis(daemon, clock)["handoff"]["median_seconds_to_first_dm"] == 12 * 60.0

    modal = open_reply_form(app, sandbox, case_id=case_id, alert_ts=alert["ts"])
    assert where_options(modal) == ["public", "dm"]
    submit_reply(app, modal, text="Thanks Anna, a new base is on its way", where="dm")
    submit_reply(app, modal, text="Thanks Anna, a new base is on its way", where="dm")  # a double submit
    daemon.drain()
    daemon.drain()
    dms = [p for p in sandbox.x_posts() if p["kind"] == "dm"]
    assert [(p["recipient"], p["text"]) for p in dms] == [(author_id("anna"), "Thanks Anna, a new base is on its way")]
    assert any(m["text"].startswith(f"🔒 <@{APPROVER}> is replying in private (DM)") for m in thread(sandbox, alert["ts"]))

    # our own DM comes back from GET /2/dm_events: stored as the brand's, never a customer's message
    clock.advance(timedelta(minutes=1))
    daemon.poll("x-dms")
    daemon.drain()
    with Session(daemon.engine) as s:
        ours = s.exec(select(Mention).where(Mention.kind == "dm", Mention.from_brand.is_(True))).one()
        assert ours.external_id == dms[0]["id"] and ours.case_id is None
        assert len(s.exec(select(Case)).all()) == 1
        private_rows = s.exec(select(Outbox).where(Outbox.kind == OutboxKind.REPLY_PRIVATE)).all()
        assert [(r.state, r.target) for r in private_rows] == [("sent", dm.external_id)]

    CaseActions(engine=daemon.engine, rules=lambda: RULES, clock=clock).resolve(case_id=case_id, user=APPROVER)
    figures = kpis(daemon, clock)
    assert figures["handoff"] == {"handed_off": 1, "moved_to_dm": 1, "percent": 100.0,
                                  "median_seconds_to_first_dm": 720.0, "resolved_in_dm": 1}
    with Session(daemon.engine) as s:
        report = build_report(s, since=clock.now() - timedelta(days=1), until=clock.now() + timedelta(seconds=1))
    digest = summary_text(report, title="Weekly")
    assert "Moved to DM: 1 of 1 hand-offs (100%), first DM after a median 12 min, 1 resolved in DM" in digest
    assert "4411" not in digest and "cracked" not in str(report.top_keywords)
    stats = CaseActions(engine=daemon.engine, rules=lambda: RULES, clock=clock).stats_today()
    assert stats["Moved to DM"] == "1 of 1 hand-offs"


def test_messenger_answer_continues_the_comment_case_and_the_window_is_said_plainly(sandbox, fb_daemon, clock):
    daemon = fb_daemon
    fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.")
    daemon.poll("fb-comments")
    daemon.drain()
    [alert] = top_level(sandbox)
    private = [p for p in sandbox.fb_posts() if p["kind"] == "private_reply"]
    psid = sandbox.fb_psid("7100000000000001")
    assert [p["recipient"] for p in private] == [psid]
    with Session(daemon.engine) as s:
        case_id = s.exec(select(Case)).one().id
    app = slack_app(daemon, sandbox, clock)
    modal = open_reply_form(app, sandbox, case_id=case_id, alert_ts=alert["ts"])
    assert where_options(modal) == [] and "has not answered the private reply in Messenger yet" in context_text(modal)

    clock.advance(timedelta(minutes=3))
    sandbox.add_fb_messages([{"message": "Order 5150 please", "from": {"id": psid, "name": "Anna Berg"},
                              "created_time": clock.now().strftime("%Y-%m-%dT%H:%M:%S+0000")}])
    daemon.poll("fb-messages")
    daemon.drain()
    with Session(daemon.engine) as s:
        assert len(s.exec(select(Case)).all()) == 1
    assert len(top_level(sandbox)) == 1
    assert any(m["text"].startswith("🔒 private message from Anna Berg") for m in thread(sandbox, alert["ts"]))

    # three days on: past Messenger's 24 hours, a person's answer goes with the HUMAN_AGENT tag
    clock.advance(timedelta(days=3))
    modal = open_reply_form(app, sandbox, case_id=case_id, alert_ts=alert["ts"])
    assert where_options(modal) == ["public", "dm"]
    assert "goes out with the human-agent tag until" in context_text(modal)
    submit_reply(app, modal, text="Your refund is on its way", where="dm")
    daemon.drain()
    [sent] = [p for p in sandbox.fb_posts() if p["kind"] == "messenger"]
    assert (sent["recipient"], sent["text"], sent.get("tag")) == (psid, "Your refund is on its way", "HUMAN_AGENT")

    # eight days after her last message nothing may be sent: the form says so, a submit is refused plainly
    clock.advance(timedelta(days=5))
    modal_closed = open_reply_form(app, sandbox, case_id=case_id, alert_ts=alert["ts"])
    assert where_options(modal_closed) == []
    assert "Messenger's window for this conversation closed on" in context_text(modal_closed)
    submit_reply(app, modal, text="Anything else?", where="dm")  # the form opened while it was still open
    daemon.drain()
    assert [p["text"] for p in sandbox.fb_posts() if p["kind"] == "messenger"] == ["Your refund is on its way"]
    assert any("Messenger's window for this conversation closed on" in t for t in ephemerals(sandbox))


def test_a_dm_after_the_follow_up_window_opens_its_own_case_instead(sandbox, x_daemon, clock):
    daemon = x_daemon
    tweet(sandbox, clock, 1, "@nordlysshop my lamp arrived broken", author="anna")
    daemon.poll("x-mentions")
    daemon.drain()
    with Session(daemon.engine) as s:
        case_id = s.exec(select(Case)).one().id
    CaseActions(engine=daemon.engine, rules=lambda: RULES, clock=clock).resolve(case_id=case_id, user=APPROVER)
    clock.advance(RULES.acknowledgement.private_followup + timedelta(hours=1))
    sandbox.add_x_dms([{"text": "the new lamp is broken too", "sender": {"id": author_id("anna"), "username": "anna"}}])
    daemon.poll("x-dms")
    daemon.drain()
    with Session(daemon.engine) as s:
        old, new = s.exec(select(Case).order_by(Case.id)).all()
        assert not old.moved_to_dm and new.conversation_id != old.conversation_id
