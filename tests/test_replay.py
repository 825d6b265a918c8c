"""`mention-monitor run --once --replay examples/mentions.jsonl`: the offline path, end to end."""

from __future__ import annotations

import sqlalchemy as sa

from monitor.cli import main
from monitor.store import make_engine
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples" / "mentions.jsonl"


def counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        mentions = conn.execute(sa.text("select count(*) from mention")).scalar_one()
        cases = conn.execute(sa.text("select count(*) from \"case\"")).scalar_one()
        alerts = conn.execute(sa.text("select count(*) from outbox where kind = 'alert'")).scalar_one()
        conn.execute(sa.text("select 1"))
    engine.dispose()
    return mentions, cases, alerts


def new_posts(printed: str) -> list[str]:
    """The alerts the console printed as new posts (an update is announced by "(alert TS updated)")."""
    lines = printed.splitlines()
    return [line for i, line in enumerate(lines)
            if "mention from" in line and not any(p.startswith("(alert ") for p in lines[max(0, i - 2):i])]


def test_replaying_the_examples_twice_stores_and_alerts_nothing_new(db_url, capsys, monkeypatch):
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    argv = ["run", "--once", "--replay", str(EXAMPLES), "--rules", str(ROOT / "rules.yaml"), "--db", db_url]
    assert main(argv) == 0
    first = counts(db_url)
    printed = capsys.readouterr().out
    lines = EXAMPLES.read_text(encoding="utf-8").splitlines()
    assert first[0] == len(lines)
    assert first[1] > 0 and first[2] > 0
    # the console notifier shows the alerts a person would have seen in Slack
    assert printed.count("mention from") + printed.count("similar mentions") >= first[2]

    assert main(argv) == 0
    assert counts(db_url) == first
    assert new_posts(capsys.readouterr().out) == []  # a countdown may tick on; no alert is posted again

    # even with the replay's cursor forgotten, nothing is stored or alerted twice
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("delete from cursor"))
    engine.dispose()
    assert main(argv) == 0
    assert counts(db_url) == first
