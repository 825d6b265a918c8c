"""Slack refuses what breaks Block Kit's limits: every text we render fits, and a refused alert still
reaches the team as a plain message, with a word in #cs-ops; nothing waits for it forever."""

from __future__ import annotations

from sqlmodel import Session, select

from monitor.model import Outbox, OutboxKind
from tests.test_acknowledge import fb_comment, make_daemon
from tests.test_slack_flow import thread, top_level


def ops(sandbox):
    return [m["text"] for m in sandbox.slack_messages() if m["op"] == "post" and m["channel"] == "cs-ops"]


def run(daemon, clock, rounds: int = 3) -> None:
    for _ in range(rounds):
        daemon.poll("fb-comments")
        daemon.drain()
        clock.advance(60)


def outbox_states(daemon) -> dict[str, list[str]]:
    with Session(daemon.engine) as s:
        rows = s.exec(select(Outbox).order_by(Outbox.id)).all()
    states: dict[str, list[str]] = {}
    for row in rows:
        states.setdefault(row.kind, []).append(row.state)
    return states


def test_a_3500_character_display_name_still_gives_a_full_alert_with_its_thread(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))
    fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.", name="Anna " * 700)
    run(daemon, clock)
    [alert] = top_level(sandbox)
    assert alert["blocks"], "the alert keeps its blocks and buttons"
    head = alert["blocks"][0]["text"]["text"]
    assert "Anna Anna" in head and "…" in head and len(head) < 400
    notes = [m["text"] for m in thread(sandbox, alert["ts"])]
    assert any(n.startswith("Public acknowledgement posted (en)") for n in notes)
    assert ops(sandbox) == []
    assert set(outbox_states(daemon)[OutboxKind.THREAD]) == {"sent"}


def refused_alert(sandbox, db_url, rules, rules_file, clock, *, refusals: int):
    """One complaint whose Slack posts are refused `refusals` times; the daemon, once it has run."""
    daemon = make_daemon(sandbox, db_url, rules, rules_file, clock, names=("fb-comments",))
    sandbox.add_fault(platform="slack", path="/api/chat.postMessage", body="error:invalid_blocks", times=refusals)
    fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.")
    run(daemon, clock)
    return daemon


def test_a_refused_alert_is_posted_plain_with_its_thread_and_ops_is_told(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = refused_alert(sandbox, db_url, simple_rules, simple_rules_file, clock, refusals=1)
    [alert] = top_level(sandbox)
    assert alert["blocks"] == []
    assert alert["text"].endswith("The lamp arrived broken. I want a refund.\n"
                                  "(case 1: Slack refused the full alert; the buttons are missing)")
    assert any(m["text"].startswith("Public acknowledgement posted (en)") for m in thread(sandbox, alert["ts"]))
    assert ops(sandbox) == [":warning: Slack refused the alert of case 1 (Slack chat.postMessage in "
                            "#cs-alerts: Slack refused it (invalid_blocks)); it was posted as a plain message without buttons. "
                            "Use /mentions to claim or resolve it."]
    assert "pending" not in sum(outbox_states(daemon).values(), [])


def test_an_alert_refused_even_plain_is_reported_and_its_notes_stop_waiting(
        sandbox, db_url, simple_rules, simple_rules_file, clock):
    daemon = refused_alert(sandbox, db_url, simple_rules, simple_rules_file, clock, refusals=2)
    assert top_level(sandbox) == []
    assert ops(sandbox) == [":rotating_light: Slack refused the alert of case 1 (Slack chat.postMessage in "
                            "#cs-alerts: Slack refused it (invalid_blocks)), even as a plain message; the case is not in "
                            "Slack, but /mentions lists it."]
    states = outbox_states(daemon)
    assert states[OutboxKind.ALERT] == ["failed"]
    assert "pending" not in sum(states.values(), []), states  # no thread note retries every 2 s forever


def test_a_garbled_slack_answer_does_not_lose_a_thread_line(sandbox, db_url, simple_rules, simple_rules_file, clock):
    from monitor.cases.actions import CaseActions

    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))
    fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.")
    run(daemon, clock)
    [alert] = top_level(sandbox)
    actions = CaseActions(engine=daemon.engine, rules=lambda: simple_rules, clock=clock, policies=daemon.policies)
    assert actions.claim(case_id=1, user="U0CLAIMER1").changed
    sandbox.add_fault(platform="slack", path="/api/chat.postMessage", body="malformed", times=1)
    daemon.drain()
    clock.advance(120)  # past the retry's back-off
    daemon.drain()
    notes = [m["text"] for m in thread(sandbox, alert["ts"])]
    assert notes.count("<@U0CLAIMER1> claimed this case.") == 1
    assert "pending" not in sum(outbox_states(daemon).values(), [])


def test_a_thread_line_garbled_past_its_retries_is_reported_in_ops(sandbox, db_url, simple_rules, simple_rules_file,
                                                                   clock):
    from monitor.cases.actions import CaseActions
    from monitor.delivery.outbox import MALFORMED_ATTEMPTS

    daemon = make_daemon(sandbox, db_url, simple_rules, simple_rules_file, clock, names=("fb-comments",))
    fb_comment(sandbox, clock, "The lamp arrived broken. I want a refund.")
    run(daemon, clock)
    [alert] = top_level(sandbox)
    actions = CaseActions(engine=daemon.engine, rules=lambda: simple_rules, clock=clock, policies=daemon.policies)
    assert actions.claim(case_id=1, user="U0CLAIMER1").changed
    sandbox.add_fault(platform="slack", path="/api/chat.postMessage", body="malformed", times=MALFORMED_ATTEMPTS)
    for _ in range(MALFORMED_ATTEMPTS + 1):
        daemon.drain()
        clock.advance(120)  # past each retry's back-off
    assert "<@U0CLAIMER1> claimed this case." not in [m["text"] for m in thread(sandbox, alert["ts"])]
    ops = [m["text"] for m in top_level(sandbox, "cs-ops")]
    assert len(ops) == 1 and ops[0].startswith(
        f":warning: A thread line or update of case 1 could not be posted to Slack after {MALFORMED_ATTEMPTS} "
        "attempts ("), ops
    assert ops[0].endswith("); nothing will retry it.")
    assert "pending" not in sum(outbox_states(daemon).values(), [])
