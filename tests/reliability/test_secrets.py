"""Tokens never appear in logs, reprs, exception texts, stored errors or anything Slack received."""

from __future__ import annotations

import logging

import pytest

from connectors.base import ConnectorError, ReplyTarget
from monitor.settings import Settings
from tests.reliability.test_faults import TOKEN, World

SECRETS = {
    "X_BEARER_TOKEN": TOKEN, "X_API_KEY": TOKEN, "X_API_SECRET": TOKEN, "X_ACCESS_TOKEN": TOKEN,
    "X_ACCESS_TOKEN_SECRET": TOKEN, "FACEBOOK_PAGE_TOKEN": TOKEN, "SLACK_BOT_TOKEN": "xoxb-" + TOKEN,
    "SLACK_APP_TOKEN": "xapp-" + TOKEN, "SLACK_SIGNING_SECRET": TOKEN,
}


def test_no_token_in_logs_reprs_errors_or_slack(tmp_path, monkeypatch, caplog):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    seen: list[str] = []
    world = World(tmp_path)  # every connector of the world holds TOKEN
    try:
        caplog.set_level(logging.DEBUG)
        box = world.sandbox
        for status in (401, 500, 503, 429):
            box.add_fault(platform="x", path="/2/users", status=status)
            box.add_fault(platform="facebook", path="/", status=status)
            box.add_fault(platform="slack", path="/api/", status=status)
            world.tweet()
            world.comment()
            world.poll_all()
            world.daemon.drain()
            world.advance(1000)
        box.add_fault(platform="facebook", path="/", delay_s=1.0)
        box.add_fault(platform="x", path="/2/users", body="malformed")
        world.poll_all()
        world.advance(1000)
        world.poll_all()
        world.daemon.drain()
        sources = {b.platform: b.connector for b in world.daemon.sources.values()}
        target = ReplyTarget(platform="x", kind="mention", external_id="1", author_id="2")
        for source in sources.values():
            for call in (lambda s=source: s.fetch(kind=sorted(s.kinds)[0], cursor="{bad"),
                         lambda s=source: s.reply_public(target=target, text="hi"),
                         lambda s=source: s.send_private(target=target, text="hi")):
                for status in (401, 500, 400):
                    box.add_fault(platform=source.name, path="/", status=status)
                    with pytest.raises(ConnectorError) as caught:
                        call()
                    seen += [str(caught.value), repr(caught.value)]
        seen += [repr(world.daemon.notifier), repr(Settings()), str(Settings().model_dump())]
        seen += [repr(s) for s in sources.values()]
    finally:
        world.close()
    seen += [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    seen += [str(m) for m in world.sandbox.slack_messages()]
    from tests.reliability.helpers import query

    seen += [str(row) for row in query(world.url, "select error, result, payload from outbox")]
    seen += [str(row) for row in query(world.url, "select last_error from sourcehealth")]
    assert len(caplog.records) > 20 and any("401" in s or "rejected" in s for s in seen)
    leaks = [s for s in seen if TOKEN in s]
    assert [s[:300] for s in leaks] == []
