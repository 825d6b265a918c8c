"""SlackNotifier through the real slack_sdk against the loopback Slack sandbox."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from connectors.base import AuthFailed, BadPayload, Notifier, PostedMessage, RateLimited, Refused, Transient
from connectors.sandbox import Sandbox
from connectors.slack import blocks as sb
from connectors.slack.notifier import SlackNotifier
from monitor.views import AlertView

TOKEN = "xoxb-secret-test-token-4242"
NOW = datetime(2026, 11, 23, 13, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    sb_ = Sandbox().start()
    yield sb_
    sb_.stop()


@pytest.fixture()
def slack(sandbox: Sandbox) -> SlackNotifier:
    sandbox.reset()
    sandbox.configure(slack_burst=1000, slack_refill_per_s=1.0)
    return SlackNotifier(token=TOKEN, base_url=sandbox.url, timeout=2.0)


def alert(**changes: object) -> AlertView:
    base = AlertView(
        case_id=7, platform="x", kind="mention", author_handle="angry_anna", author_name="",
        author_followers=99, author_verified=False, text="Refund me or else", url="https://x.com/a/status/7",
        lang="en", sentiment=-0.7, complaint=0.9, categories=("billing",), rule="urgent", severity="urgent",
        state="open", now=NOW, sla_due_at=NOW + timedelta(minutes=27), timezone="UTC",
        ack_mode="approve", ack_text="Sorry! Please DM us.",
    )
    return replace(base, **changes)


def test_is_a_notifier_and_keeps_the_token_out_of_repr(slack: SlackNotifier) -> None:
    assert isinstance(slack, Notifier)
    assert TOKEN not in repr(slack)


def test_alert_arrives_with_blocks_and_metadata(sandbox: Sandbox, slack: SlackNotifier) -> None:
    text, blocks = slack.render_alert(alert())
    posted = slack.post(channel="C0ALERTS", text=text, blocks=blocks, metadata={"case_id": "7"})
    [message] = sandbox.slack_messages()
    assert posted == PostedMessage(channel="C0ALERTS", ts=message["ts"])
    assert message["text"] == "URGENT X mention from @angry_anna: Refund me or else"
    assert message["blocks"] == blocks
    assert message["metadata"] == {"event_type": "mm_alert", "event_payload": {"case_id": "7"}}


def test_hostile_mention_produces_no_ping_in_what_slack_received(sandbox: Sandbox, slack: SlackNotifier) -> None:
    text, blocks = slack.render_alert(alert(text="<!channel> <!here> <@U123> pay up"))
    slack.post(channel="C0ALERTS", text=text, blocks=blocks)
    [message] = sandbox.slack_messages()
    assert message["text"] == "URGENT X mention from @angry_anna: &lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; pay up"
    body = next(b for b in message["blocks"] if b["block_id"] == "mm_text")["text"]["text"]
    assert body == ">&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; pay up"


def test_thread_reply_and_update(sandbox: Sandbox, slack: SlackNotifier) -> None:
    root = slack.post(channel="C0ALERTS", text="alert")
    slack.post(channel="C0ALERTS", text="follow-up", thread_ts=root.ts)
    slack.update(channel=root.channel, ts=root.ts, text="alert, claimed", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": "claimed"}}])
    log = sandbox.slack_messages()
    assert [(m["op"], m["text"], m["thread_ts"]) for m in log] == [
        ("post", "alert", ""), ("post", "follow-up", root.ts), ("update", "alert, claimed", "")]
    assert log[-1]["blocks"][0]["text"]["text"] == "claimed"


def test_update_of_a_missing_message_is_refused(slack: SlackNotifier) -> None:
    with pytest.raises(Refused, match="message_not_found"):
        slack.update(channel="C0ALERTS", ts="1.000001", text="x")


def test_find_by_metadata_pages_through_history(sandbox: Sandbox, slack: SlackNotifier) -> None:
    wanted = slack.post(channel="C0ALERTS", text="case 3", metadata=sb.alert_metadata(case_id=3))
    for i in range(230):  # pushes case 3 onto the second page of conversations.history
        slack.post(channel="C0ALERTS", text=f"other {i}", metadata=sb.alert_metadata(case_id=1000 + i))
    assert slack.find_by_metadata(channel="C0ALERTS", key="case_id", value="3") == wanted
    assert slack.find_by_metadata(channel="C0ALERTS", key="case_id", value="4") is None
    assert sandbox.stats()["requests"]["POST /api/conversations.history"] >= 3


def test_ephemeral_and_file_upload(sandbox: Sandbox, slack: SlackNotifier) -> None:
    slack.post_ephemeral(channel="C0ALERTS", user="U0BOB", text="only you")
    slack.upload_files(channel="C0REPORT", files=[("volume.png", b"\x89PNG" + b"0" * 2000), ("frt.csv", b"a,b\n")],
                       title="Daily report", initial_comment="Yesterday in numbers")
    eph, post = sandbox.slack_messages()
    assert (eph["op"], eph["recipient"], eph["text"]) == ("ephemeral", "U0BOB", "only you")
    assert (post["channel"], post["text"]) == ("C0REPORT", "Yesterday in numbers")
    assert [(f["title"], f["length"]) for f in post["files"]] == [("Daily report", 2004), ("Daily report", 4)]


@pytest.mark.parametrize(("status", "error"), [(401, AuthFailed), (500, Transient), (503, Transient)])
def test_platform_failures_become_connector_errors(sandbox: Sandbox, slack: SlackNotifier,
                                                   status: int, error: type[Exception]) -> None:
    sandbox.add_fault(platform="slack", path="chat.postMessage", status=status)
    with pytest.raises(error) as raised:
        slack.post(channel="C0ALERTS", text="hello")
    assert TOKEN not in str(raised.value)
    assert sandbox.slack_messages() == []


def test_long_rate_limit_is_reported_not_slept(sandbox: Sandbox, slack: SlackNotifier) -> None:
    sandbox.add_fault(platform="slack", path="chat.postMessage", status=429)  # Retry-After: 30
    started = time.monotonic()
    with pytest.raises(RateLimited) as raised:
        slack.post(channel="C0ALERTS", text="hello")
    assert time.monotonic() - started < 2
    wait = (raised.value.until - datetime.now(UTC)).total_seconds()
    assert 25 < wait <= 30


def test_short_rate_limit_is_retried_by_slack_sdk(sandbox: Sandbox, slack: SlackNotifier) -> None:
    sandbox.configure(slack_burst=1, slack_refill_per_s=2.0)  # second message in the same instant: 429, wait 1 s
    slack.post(channel="C0ALERTS", text="one")
    slack.post(channel="C0ALERTS", text="two")
    assert [m["text"] for m in sandbox.slack_messages()] == ["one", "two"]
    assert sandbox.stats()["requests"]["POST /api/chat.postMessage"] == 3


def test_timeout_malformed_and_unknown_channel(sandbox: Sandbox) -> None:
    sandbox.reset()
    slack = SlackNotifier(token=TOKEN, base_url=sandbox.url + "/api/", timeout=0.3)
    sandbox.add_fault(platform="slack", path="chat.postMessage", delay_s=1.0, status=200)
    with pytest.raises(Transient, match="network problem"):
        slack.post(channel="C0ALERTS", text="slow")
    sandbox.add_fault(platform="slack", path="chat.postMessage", body="malformed")
    with pytest.raises(BadPayload, match="not JSON"):
        slack.post(channel="C0ALERTS", text="garbled")
    with pytest.raises(Refused, match="channel_not_found"):
        slack.post(channel="", text="nowhere")


def test_auth_check_and_token_absent_from_debug_logs(sandbox: Sandbox, slack: SlackNotifier,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="slack_sdk")  # the CLI quiets it; other tests may have run it
    assert slack.check_auth()["team_id"] == "T0SANDBOX1"
    slack.post(channel="C0ALERTS", text="hi")
    sandbox.add_fault(platform="slack", path="chat.postMessage", status=500)
    with pytest.raises(Transient):
        slack.post(channel="C0ALERTS", text="hi")
    assert "chat.postMessage" in caplog.text  # slack_sdk did log the requests...
    assert TOKEN not in caplog.text  # ...but never the token


def test_find_by_metadata_accepts_channel_names(sandbox: Sandbox, slack: SlackNotifier) -> None:
    posted = slack.post(channel="#cs-alerts", text="case 9", metadata=sb.alert_metadata(case_id=9))
    assert slack.find_by_metadata(channel="#cs-alerts", key="case_id", value="9") == posted
    after_crash = SlackNotifier(token=TOKEN, base_url=sandbox.url)  # knows no names yet
    found = after_crash.find_by_metadata(channel="#cs-alerts", key="case_id", value="9")
    assert found is not None and found.ts == posted.ts


# Which bot scopes each Web API method we call needs (docs.slack.dev method reference).
SCOPES_BY_METHOD = {
    "chat_postMessage": {"chat:write"}, "chat_update": {"chat:write"}, "chat_postEphemeral": {"chat:write"},
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_list": {"channels:read", "groups:read"},
    "files_upload_v2": {"files:write"}, "usergroups_users_list": {"usergroups:read"},
    "views_open": set(), "views_publish": set(), "auth_test": set(), "chat_getPermalink": set(),
    "apps_connections_open": set(),  # called with the app-level token (connections:write), no bot scope
    "is_connected": set(),  # the Socket Mode client's own state, no Web API call
}


def test_manifest_asks_for_exactly_the_scopes_the_code_uses() -> None:
    root = Path(__file__).resolve().parents[1]
    called = set()
    for module in ("connectors/slack/notifier.py", "connectors/slack/app.py"):
        called |= set(re.findall(r"client\.([a-z]+_[A-Za-z_0-9]+)\(", (root / module).read_text()))
    assert called - SCOPES_BY_METHOD.keys() == set(), "a new Slack method: add its scopes here and to the manifest"
    needed = set().union(*(SCOPES_BY_METHOD[name] for name in called)) | {"commands"}  # /mentions
    manifest = YAML(typ="safe").load((root / "slack-app-manifest.yaml").read_text())
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(needed)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/mentions"]
