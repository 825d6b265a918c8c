"""An automatic acknowledgement that cannot go out before its case's response target expires:
a public "sorry" a day late is worse than none, so the thread says so and the team decides."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from monitor.cases.actions import CaseActions
from monitor.model import Case, Outbox, OutboxKind
from tests.test_acknowledge import make_daemon, replies
from tests.test_slack_flow import thread, top_level, tweet


def test_acknowledgement_past_x_daily_reply_limit_expires_and_the_thread_says_so(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    sandbox.configure(x_limits={"create_tweet": (2, 86_400)})  # X: a per-day create limit, now spent at 2
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock)
    ids = []
    for n in (1, 2, 3):  # three minutes apart: three alerts of their own, not a group
        ids.append(tweet(sandbox, clock, n, "@nordlysshop the lamp arrived broken", author=f"customer{n}"))
        daemon.poll("x-mentions")
        daemon.drain()
        clock.advance(timedelta(minutes=3))
    assert sorted(p["in_reply_to"] for p in replies(sandbox)) == sorted(ids[:2])

    third = next(a for a in top_level(sandbox) if "customer3" in str(a["blocks"]))
    notes = [m["text"] for m in thread(sandbox, third["ts"])]
    assert notes == [
        "The automatic acknowledgement was not posted: X's reply limit holds it until Wed 25 Nov 10:00, and a "
        "public “sorry” after this case's response target (10:36) does more harm than good. Decide: answer by "
        "hand, or post it with Acknowledge: “Hi @customer3, we're sorry to hear that. Please send us a DM with "
        "your order number so we can sort it out.”"]
    updated = [m for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == third["ts"]][-1]
    buttons = [e["action_id"] for b in updated["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "mm_ack" in buttons, "the team can still decide to post it"

    clock.advance(timedelta(hours=25))  # the limit resets: nothing goes out a day late
    daemon.drain()
    assert len(replies(sandbox)) == 2
    with Session(daemon.engine) as s:
        row = s.exec(select(Outbox).where(Outbox.kind == OutboxKind.REPLY_PUBLIC, Outbox.target == ids[2])).one()
        assert row.state == "failed" and row.result["expired"]
        assert s.exec(select(Case).where(Case.id == row.case_id)).one().ack_mode == "approve"
        case_id = row.case_id

    # the team decides to post it after all: the button still works
    actions = CaseActions(engine=daemon.engine, rules=lambda: simple_rules, clock=clock, policies=daemon.policies)
    assert actions.acknowledge(case_id=case_id, user="U0APPROVER1", authorised=True).changed
    daemon.drain()
    assert sorted(p["in_reply_to"] for p in replies(sandbox)) == sorted(ids)
