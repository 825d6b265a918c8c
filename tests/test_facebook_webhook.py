"""Page webhooks end to end: the sandbox signs and POSTs events like Meta; the daemon's endpoint
checks them and stores them through the pipeline; polling still finds whatever a webhook missed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from connectors.facebook_webhook import signature_ok
from connectors.sandbox import Sandbox
from monitor.clock import SettableClock
from monitor.runtime.daemon import Daemon
from monitor.runtime.wiring import build_daemon, build_sources, start_facebook_webhook
from monitor.settings import Settings
from tests.sandbox_fixtures import PAGE_ID

APP_SECRET = "0123456789abcdef0123456789abcdef"
VERIFY_TOKEN = "nordlys-verify-7"
POST_ID = f"{PAGE_ID}_122100000000000888"


@pytest.fixture
def daemon(sandbox: Sandbox, simple_rules, simple_rules_file: Path, clock: SettableClock,
           tmp_path: Path) -> Iterator[Daemon]:
    sandbox.configure(slack_burst=1000)
    settings = Settings(_env_file=None, facebook_app_secret=APP_SECRET, facebook_verify_token=VERIFY_TOKEN)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=simple_rules, sandbox_url=sandbox.url,
                                              clock=clock).items() if k in ("fb-comments", "fb-messages")}
    d = build_daemon(settings=settings, ruleset=simple_rules, rules_path=str(simple_rules_file),
                     db_url=f"sqlite:///{tmp_path / 'mm.db'}", sandbox_url=sandbox.url, clock=clock,
                     sources=sources, worker="test")
    server = start_facebook_webhook(d, settings=settings, port=-1)  # -1: any free port
    assert server is not None
    d.webhook = server  # type: ignore[attr-defined]
    sandbox.configure_fb_webhooks(url=server.url + "/facebook/webhook", app_secret=APP_SECRET,
                                  retry_after_s=[0.05, 0.05])
    yield d
    server.stop()
    d.engine.dispose()


def _rows(daemon: Daemon) -> list[tuple[str, str, str]]:
    with daemon.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "select kind, text, conversation_id from mention where platform = 'facebook' and from_brand = false "
            "order by id"))]


def _until(check: Callable[[], object], *, within_s: float = 10.0) -> object:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.02)
    raise AssertionError(f"not within {within_s} s")


def test_verification_handshake_echoes_the_challenge_only_for_our_token(
        daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    url = daemon.webhook.url + "/facebook/webhook"  # type: ignore[attr-defined]
    ok = requests.get(url, params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                   "hub.challenge": "1158201444"}, timeout=5)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert not [r for r in caplog.records if VERIFY_TOKEN in r.getMessage() and not r.name.startswith("urllib3")]
    wrong = requests.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "guess",
                                      "hub.challenge": "1158201444"}, timeout=5)
    assert wrong.status_code == 403 and "1158201444" not in wrong.text


def test_a_comment_pushed_by_webhook_is_stored_and_alerted_without_a_poll(sandbox: Sandbox, daemon: Daemon) -> None:
    sandbox.graph.add_post(post_id=POST_ID, message="Autumn sale")
    [comment_id] = sandbox.add_fb_comments([{"message": "my lamp arrived broken and I want a refund",
                                             "post_id": POST_ID, "from": {"id": "7100001", "name": "Kari"}}])
    _until(lambda: _rows(daemon))
    assert _rows(daemon) == [("comment", "my lamp arrived broken and I want a refund", POST_ID)]
    daemon.drain()
    [alert] = [m for m in sandbox.slack_messages() if m["op"] == "post" and not m["thread_ts"]]
    assert "my lamp arrived broken" in str(alert)
    assert [e["status"] for e in sandbox.fb_webhook_log() if e["id"] == comment_id] == [200]
    daemon.poll("fb-comments")  # polling reads it too and stores nothing twice
    assert len(_rows(daemon)) == 1


def test_a_message_pushed_by_webhook_joins_the_conversation_polling_knows(sandbox: Sandbox, daemon: Daemon) -> None:
    sandbox.add_fb_messages([{"from": {"id": "7300", "name": "Per"}, "message": "where is my parcel?"}])
    _until(lambda: _rows(daemon))
    [conversation_id] = list(sandbox.graph.conversations)
    assert _rows(daemon) == [("message", "where is my parcel?", conversation_id)]
    daemon.poll("fb-messages")
    assert len(_rows(daemon)) == 1


def test_a_badly_signed_event_is_refused_retried_and_then_found_by_polling(sandbox: Sandbox, daemon: Daemon) -> None:
    sandbox.configure_fb_webhooks(bad_signatures=1.0)
    sandbox.add_fb_comments([{"message": "forged or not, read me", "post_id": POST_ID,
                              "from": {"id": "7100002", "name": "Ola"}}])
    log = _until(lambda: len(sandbox.fb_webhook_log()) == 3 and sandbox.fb_webhook_log())
    assert [(e["attempt"], e["status"]) for e in log] == [(1, 401), (2, 401), (3, 401)]  # Meta-style retries
    assert _rows(daemon) == []  # nothing parsed from a body whose signature is wrong
    daemon.poll("fb-comments")
    assert _rows(daemon) == [("comment", "forged or not, read me", POST_ID)]


def test_a_dropped_webhook_loses_nothing_polling_stores_it(sandbox: Sandbox, daemon: Daemon) -> None:
    sandbox.configure_fb_webhooks(dropped=1.0)
    sandbox.add_fb_messages([{"from": {"id": "7301", "name": "Liv"}, "message": "refund please"}])
    assert [e["status"] for e in sandbox.fb_webhook_log()] == ["dropped"]
    daemon.poll("fb-messages")
    assert [r[1] for r in _rows(daemon)] == ["refund please"]


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"object":"page","entry":[]}'
    header = "sha256=" + __import__("hmac").new(APP_SECRET.encode(), body, "sha256").hexdigest()
    assert signature_ok(body, header, APP_SECRET)
    assert not signature_ok(body + b" ", header, APP_SECRET)
    assert not signature_ok(body, header.replace("sha256=", "sha1="), APP_SECRET)
    assert not signature_ok(body, header, "")


def test_hostile_signature_and_verify_token_are_refused_not_crashed(daemon: Daemon) -> None:
    """Header values and query strings are not ASCII by promise: a non-ASCII signature or verify
    token is a refusal (401 / 403), not a 500 with a traceback in the log."""
    url = daemon.webhook.url + "/facebook/webhook"  # type: ignore[attr-defined]
    body = b'{"object":"page","entry":[]}'
    forged = requests.post(url, data=body, timeout=5, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": "sha256=caf\u00e9".encode("latin-1")})
    assert (forged.status_code, forged.text) == (401, "bad signature")
    guessed = requests.get(url, params={"hub.mode": "subscribe", "hub.verify_token": "n\u00f8rdlys",
                                        "hub.challenge": "1158201444"}, timeout=5)
    assert guessed.status_code == 403 and "1158201444" not in guessed.text
