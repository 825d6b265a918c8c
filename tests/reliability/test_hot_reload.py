"""Rules hot reload: a bad edit is refused (log + #cs-ops, once) and the last good rules stay; a good edit
applies to the next mention without a restart; the running daemon watches the file by itself."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest

from monitor.clock import SettableClock
from monitor.rules import load_rules
from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings
from tests.reliability.helpers import open_sandbox, rules_text


@pytest.fixture
def sandbox(clock):
    box = open_sandbox(clock=clock)
    yield box
    box.stop()


@pytest.fixture
def clock():
    return SettableClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))


def make_daemon(sandbox, tmp_path, clock, *, only=("x-mentions",)):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text(keywords=["broken"]), encoding="utf-8")
    ruleset = load_rules(path)
    settings = Settings(_env_file=None)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=ruleset, sandbox_url=sandbox.url, clock=clock).items()
               if k in only}
    daemon = build_daemon(settings=settings, ruleset=ruleset, rules_path=str(path),
                          db_url=f"sqlite:///{tmp_path / 'mm.db'}", sandbox_url=sandbox.url, clock=clock,
                          sources=sources, worker="test")
    return daemon, path


def tweet(sandbox, n: int, text: str) -> str:
    uid = str(810_000 + n)
    return sandbox.add_tweets([{"tweet": {"text": f"@nordlysshop {text}", "author_id": uid, "lang": "en"},
                                "author": {"id": uid, "username": f"reload{n}"}}])[0]


def alerts(sandbox) -> list[str]:
    return [str(m["blocks"]) for m in sandbox.slack_messages()
            if m["op"] == "post" and not m["thread_ts"] and m["channel"] == "cs-alerts"]


def ops(sandbox) -> list[str]:
    return [m["text"] for m in sandbox.slack_messages() if m["op"] == "post" and m["channel"] == "cs-ops"]


def test_bad_edit_is_refused_with_line_and_column_and_good_edit_applies_to_next_mention(
        sandbox, tmp_path, clock, caplog):
    daemon, path = make_daemon(sandbox, tmp_path, clock)
    good = path.read_text(encoding="utf-8")
    bad = good.replace("{channel: alerts, severity: high", "{chanel: alerts, severity: high")
    bad = bad.replace("keywords_any: [broken]", "keywords_any: [broken, furious]")
    path.write_text(bad, encoding="utf-8")
    expected = f"{path}:26:13: unknown key 'chanel' in rules[1].alert; did you mean 'channel'?"

    with caplog.at_level(logging.ERROR, logger="monitor.runtime.daemon"):
        for _ in range(3):  # the watcher looks every 2 s: the refusal is reported once, not per look
            assert daemon.reload_rules() is False
            daemon.drain()
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
        f"rules.yaml edit refused, previous rules stay in force:\n{expected}"]
    assert ops(sandbox) == [f":no_entry: rules.yaml edit refused, the previous rules stay in force:\n```{expected}```"]

    # the last good rules are live: "broken" alerts, "furious" (only in the refused edit) does not
    tweet(sandbox, 1, "my lamp is furious")
    daemon.poll("x-mentions")
    daemon.drain()
    assert alerts(sandbox) == []
    tweet(sandbox, 2, "my lamp arrived broken")
    daemon.poll("x-mentions")
    daemon.drain()
    assert len(alerts(sandbox)) == 1 and "my lamp arrived broken" in alerts(sandbox)[0]

    path.write_text(good.replace("keywords_any: [broken]", "keywords_any: [broken, furious]"), encoding="utf-8")
    assert daemon.reload_rules() is True
    tweet(sandbox, 3, "I am furious about the delivery")
    daemon.poll("x-mentions")
    daemon.drain()
    assert len(alerts(sandbox)) == 2 and "I am furious about the delivery" in alerts(sandbox)[1]
    assert len(ops(sandbox)) == 1, "a good edit after a refused one reports nothing to #cs-ops"

    # a bad edit after a good one is refused too, and the good one stays live
    path.write_text(bad.replace("furious", "livid"), encoding="utf-8")
    assert daemon.reload_rules() is False
    assert "furious" in str(daemon.ruleset.rules[1]) and "livid" not in str(daemon.ruleset.rules[1])
    daemon.engine.dispose()


def test_running_daemon_watches_the_file(sandbox, tmp_path, clock):
    daemon, path = make_daemon(sandbox, tmp_path, clock, only=())
    daemon.start()
    try:
        path.write_text(rules_text(keywords=["broken", "furious"]), encoding="utf-8")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and "furious" not in str(daemon.ruleset.rules[1]):
            time.sleep(0.1)
        assert "furious" in str(daemon.ruleset.rules[1]), "the edit was not picked up within 8 s"
    finally:
        daemon.stop()
        daemon.engine.dispose()
