"""Bolt interactivity: signed Slack requests dispatched into the app, the real CaseActions behind it,
and the app's WebClient pointed at the Slack sandbox."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.sandbox import Sandbox
from connectors.slack.app import build_app, snooze_minutes
from connectors.slack.blocks import mention
from connectors.slack.notifier import SlackNotifier
from monitor import messages as m
from monitor.cases.actions import CaseActions
from monitor.clock import SettableClock
from monitor.delivery import outbox
from monitor.model import Case, Event, Mention, Outbox, OutboxKind
from monitor.rules import load_rules
from monitor.store import create_schema, make_engine, transaction

SECRET = "test-signing-secret"
TOKEN = "xoxb-app-test-token"
NOW = datetime(2026, 11, 23, 13, 5, tzinfo=UTC)
APPROVER, STRANGER, CLAIMER = "U0APPROVER1", "U0STRANGER", "U0CLAIMER"
CHANNEL = "C0ALERTS"
RULES = load_rules(Path(__file__).resolve().parents[1] / "rules.yaml")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb = Sandbox().start()
    yield sb
    sb.stop()


@pytest.fixture()
def engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'mm.db'}")
    create_schema(engine)
    with Session(engine) as s:
        mention = Mention(platform="x", kind="mention", external_id="1860000000000000001", conversation_id="c1",
                          author_id="42", author_handle="angry_anna", text="<!channel> where is my refund",
                          url="https://x.com/angry_anna/status/1860000000000000001", created_at=NOW, lang="en",
                          sentiment=-0.8, complaint=0.9)
        s.add(mention)
        s.flush()
        case = Case(platform="x", conversation_id="c1", author_id="42", author_handle="angry_anna",
                    first_mention_id=mention.id, rule="urgent", severity="urgent", channel=CHANNEL,
                    opened_at=NOW, sla_seconds=1800, sla_due_at=NOW + timedelta(minutes=27),
                    ack_mode="approve", ack_text="Sorry @angry_anna! Please DM us your order number.",
                    alert_channel=CHANNEL, alert_ref="1700000000.000001")
        s.add(case)
        s.commit()
    return engine


@pytest.fixture()
def app(sandbox: Sandbox, engine: Engine) -> App:
    sandbox.reset()
    actions = CaseActions(engine=engine, rules=lambda: RULES, clock=SettableClock(NOW), mention_user=mention)
    return build_app(token=TOKEN, actions=actions, signing_secret=SECRET, base_url=sandbox.url,
                     approvers=[APPROVER], clock=SettableClock(NOW), process_before_response=True)


# --------------------------------------------------------------------------- requests as Slack sends them


def signed(body: str, content_type: str, *, secret: str = SECRET) -> BoltRequest:
    stamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    return BoltRequest(body=body, headers={"content-type": [content_type], "x-slack-signature": [signature],
                                           "x-slack-request-timestamp": [stamp]})


def click(app: App, action_id: str, *, user: str, value: str = "1", selected: bool = False,
          secret: str = SECRET) -> BoltResponse:
    action: dict[str, Any] = {"action_id": action_id, "block_id": "mm_actions:1", "action_ts": "1700000001.1"}
    if selected:
        action |= {"type": "static_select", "selected_option": {"value": value, "text": {"type": "plain_text",
                                                                                            "text": value}}}
    else:
        action |= {"type": "button", "value": value}
    payload = {
        "type": "block_actions", "api_app_id": "A0APP", "token": "legacy", "trigger_id": "1337.42.abc",
        "user": {"id": user, "username": user.lower(), "team_id": "T0SANDBOX1"},
        "team": {"id": "T0SANDBOX1", "domain": "nordlys"},
        "container": {"type": "message", "message_ts": "1700000000.000001", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL, "name": "alerts"},
        "message": {"type": "message", "ts": "1700000000.000001", "text": "alert"},
        "response_url": "https://hooks.slack.invalid/actions/1", "actions": [action],
    }
    return app.dispatch(signed("payload=" + quote(json.dumps(payload)), "application/x-www-form-urlencoded",
                               secret=secret))


def submit_reply(app: App, *, user: str, text: str) -> BoltResponse:
    payload = {
        "type": "view_submission", "api_app_id": "A0APP", "token": "legacy", "trigger_id": "1337.43.abc",
        "user": {"id": user, "username": user.lower(), "team_id": "T0SANDBOX1"},
        "team": {"id": "T0SANDBOX1", "domain": "nordlys"},
        "view": {"id": "V0MODAL", "type": "modal", "callback_id": "mm_reply_modal",
                 "private_metadata": f"1|{CHANNEL}:1700000000.000001", "team_id": "T0SANDBOX1",
                 "state": {"values": {"mm_reply_text": {"text": {"type": "plain_text_input", "value": text}}}}},
    }
    return app.dispatch(signed("payload=" + quote(json.dumps(payload)), "application/x-www-form-urlencoded"))


def command(app: App, text: str, *, user: str = CLAIMER) -> BoltResponse:
    body = urlencode({"token": "legacy", "team_id": "T0SANDBOX1", "channel_id": CHANNEL, "user_id": user,
                      "command": "/mentions", "text": text, "api_app_id": "A0APP", "trigger_id": "1337.44.abc",
                      "response_url": "https://hooks.slack.invalid/commands/1"})
    return app.dispatch(signed(body, "application/x-www-form-urlencoded"))


def case(engine: Engine) -> Case:
    with Session(engine) as s:
        found = s.get(Case, 1)
        assert found is not None
        return found


def events(engine: Engine, kind: str) -> list[Event]:
    with Session(engine) as s:
        return list(s.exec(select(Event).where(Event.kind == kind)).all())


def public_replies(engine: Engine) -> list[Outbox]:
    with Session(engine) as s:
        return list(s.exec(select(Outbox).where(Outbox.kind == OutboxKind.REPLY_PUBLIC)).all())


def ephemerals(sandbox: Sandbox) -> list[tuple[str, str]]:
    return [(msg["recipient"], msg["text"]) for msg in sandbox.slack_messages() if msg["op"] == "ephemeral"]


# --------------------------------------------------------------------------- tests


def test_double_click_on_claim_claims_once(app: App, engine: Engine, sandbox: Sandbox) -> None:
    assert click(app, "mm_claim", user=CLAIMER).status == 200
    assert click(app, "mm_claim", user=CLAIMER).status == 200
    assert case(engine).assignee == CLAIMER
    assert len(events(engine, "claimed")) == 1
    assert ephemerals(sandbox) == [(CLAIMER, "Nothing to change: you have already claimed this case")]
    click(app, "mm_claim", user=STRANGER)
    assert case(engine).assignee == CLAIMER
    assert ephemerals(sandbox)[-1] == (STRANGER, f"Nothing to change: already claimed by <@{CLAIMER}>")
    assert [msg for msg in sandbox.slack_messages() if msg["op"] != "ephemeral"] == []


def test_unauthorised_acknowledge_is_refused_and_nothing_is_queued(app: App, engine: Engine,
                                                                   sandbox: Sandbox) -> None:
    click(app, "mm_ack", user=STRANGER)
    assert ephemerals(sandbox) == [(STRANGER, m.SLACK_REFUSED_PUBLIC)]
    assert public_replies(engine) == []
    assert case(engine).state == "open" and case(engine).first_response_at is None
    assert [e.actor for e in events(engine, "public_refused")] == [STRANGER]
    assert [msg for msg in sandbox.slack_messages() if msg["op"] != "ephemeral"] == []


def test_approver_acknowledges_once_even_when_clicking_twice(app: App, engine: Engine, sandbox: Sandbox) -> None:
    click(app, "mm_ack", user=APPROVER)
    click(app, "mm_ack", user=APPROVER)
    [reply] = public_replies(engine)
    assert reply.payload["text"] == "Sorry @angry_anna! Please DM us your order number."
    assert case(engine).state == "acknowledged"
    assert ephemerals(sandbox) == [(APPROVER, "Nothing to change: this conversation was already acknowledged")]


def test_snooze_and_resolve(app: App, engine: Engine, sandbox: Sandbox) -> None:
    click(app, "mm_snooze", user=CLAIMER, value="1:60", selected=True)
    assert case(engine).state == "snoozed"
    assert case(engine).snoozed_until == NOW + timedelta(minutes=60)
    click(app, "mm_resolve", user=CLAIMER)
    click(app, "mm_resolve", user=STRANGER)
    assert case(engine).state == "resolved"
    assert len(events(engine, "resolved")) == 1
    assert ephemerals(sandbox) == [(STRANGER, "Nothing to change: this case is already resolved")]


def test_snooze_until_tomorrow_wakes_at_nine_local_time() -> None:
    # 14:05 in Copenhagen -> 09:00 next day = 18 h 55 min
    assert snooze_minutes("tomorrow", now=NOW, tz="Europe/Copenhagen") == 18 * 60 + 55
    assert snooze_minutes("240", now=NOW, tz="UTC") == 240


def test_reply_modal_submission(app: App, engine: Engine, sandbox: Sandbox) -> None:
    empty = submit_reply(app, user=APPROVER, text="   ")
    assert json.loads(empty.body) == {"response_action": "errors", "errors": {"mm_reply_text": m.SLACK_REPLY_EMPTY}}
    refused = submit_reply(app, user=STRANGER, text="We are on it")
    assert json.loads(refused.body)["errors"] == {"mm_reply_text": m.SLACK_REFUSED_PUBLIC}
    assert public_replies(engine) == []
    ok = submit_reply(app, user=APPROVER, text="We are on it, DM us please")
    assert ok.status == 200 and ok.body == ""
    [reply] = public_replies(engine)
    assert (reply.payload["text"], reply.payload["actor"]) == ("We are on it, DM us please", APPROVER)


def test_reply_button_refuses_strangers_before_opening_the_form(app: App, sandbox: Sandbox) -> None:
    click(app, "mm_reply", user=STRANGER)
    assert ephemerals(sandbox) == [(STRANGER, m.SLACK_REFUSED_PUBLIC)]
    assert "POST /api/views.open" not in sandbox.stats()["requests"]


def test_badly_signed_click_changes_nothing(app: App, engine: Engine) -> None:
    assert click(app, "mm_claim", user=CLAIMER, secret="not-the-secret").status == 401
    assert case(engine).assignee == ""


def test_mentions_command_lists_open_cases_and_stats(app: App) -> None:
    listed = json.loads(command(app, "").body)
    assert listed["response_type"] == "ephemeral"
    assert listed["text"] == "*1 open case, most urgent first*"
    line = listed["blocks"][1]["text"]["text"]
    # the same colour as the alert's (27 of 30 min left: green), one scale everywhere
    assert line == ("🟢 #1 · x @angry_anna · `urgent` · respond by 14:32, 27 min left\n"
                    ">&lt;!channel&gt; where is my refund")
    stats = json.loads(command(app, "stats").body)
    assert "• Cases opened: *1*" in stats["text"] and "• Open now: *1*" in stats["text"]
    assert json.loads(command(app, "help me").body)["text"] == m.SLACK_CMD_HELP


def test_app_home_publishes_open_cases_and_kpis(app: App, sandbox: Sandbox) -> None:
    body = json.dumps({"token": "legacy", "team_id": "T0SANDBOX1", "api_app_id": "A0APP", "type": "event_callback",
                       "event_id": "Ev0HOME", "event_time": 1700000000,
                       "event": {"type": "app_home_opened", "user": CLAIMER, "channel": "D0HOME", "tab": "home",
                                 "event_ts": "1700000000.1"}})
    assert app.dispatch(signed(body, "application/json")).status == 200
    [home] = sandbox.slack_views()
    assert (home["user_id"], home["type"]) == (CLAIMER, "home")
    shown = json.dumps(home["blocks"], ensure_ascii=False)
    assert "#1 · x @angry_anna · `urgent` · respond by 14:32, 27 min left" in shown
    assert "*Cases opened*\\n1" in shown


def test_user_group_members_may_post_and_membership_is_cached(sandbox: Sandbox, engine: Engine) -> None:
    sandbox.reset()
    control = urllib.request.Request(f"{sandbox.url}/_sandbox/slack/usergroups", method="POST",
                                     data=json.dumps({"S0CSLEADS": ["U0LEAD"]}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(control, timeout=5) as answer:
        assert json.load(answer) == {"ok": True}
    actions = CaseActions(engine=engine, rules=lambda: RULES, clock=SettableClock(NOW), mention_user=mention)
    app = build_app(token=TOKEN, actions=actions, signing_secret=SECRET, base_url=sandbox.url,
                    approvers=["S0CSLEADS"], process_before_response=True)
    click(app, "mm_ack", user=STRANGER)
    assert public_replies(engine) == []
    click(app, "mm_ack", user="U0LEAD")
    assert [r.payload["actor"] for r in public_replies(engine)] == ["U0LEAD"]
    assert ephemerals(sandbox) == [(STRANGER, m.SLACK_REFUSED_PUBLIC)]
    assert sandbox.stats()["requests"]["POST /api/usergroups.users.list"] == 1  # cached for 5 min


def test_end_to_end_alert_then_double_claim_updates_the_message_once(app: App, engine: Engine,
                                                                      sandbox: Sandbox) -> None:
    with transaction(engine) as s:
        fresh = s.get(Case, 1)
        assert fresh is not None
        fresh.alert_ref, fresh.alert_channel = "", ""
        s.add(fresh)
        outbox.add(s, kind=OutboxKind.ALERT, dedup_key="alert:1", case_id=1, target=CHANNEL, payload={}, now=NOW)
    deliverer = outbox.Deliverer(engine=engine, notifier=SlackNotifier(token=TOKEN, base_url=sandbox.url),
                                 sources={}, worker="test", timezone=lambda: "Europe/Copenhagen")
    deliverer.run_once(now=NOW)
    [alert] = sandbox.slack_messages()
    assert alert["text"] == "URGENT X mention from @angry_anna: &lt;!channel&gt; where is my refund"
    assert [e["action_id"] for e in alert["blocks"][-1]["elements"]][:2] == ["mm_claim", "mm_ack"]

    click(app, "mm_claim", user=CLAIMER)
    click(app, "mm_claim", user=CLAIMER)
    deliverer.run_once(now=NOW + timedelta(seconds=5))
    updates = [msg for msg in sandbox.slack_messages() if msg["op"] == "update"]
    states = [b["elements"][0]["text"] for msg in updates for b in msg["blocks"] if b.get("block_id") == "mm_state"]
    assert states == [f"Claimed by <@{CLAIMER}>"]
    assert "mm_claim" not in json.dumps(updates[0]["blocks"])
