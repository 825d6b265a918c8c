"""`mention-monitor doctor`: one line per check, what is wrong and how to fix it, exit 0 only when all is well."""

from __future__ import annotations

import io

from monitor import migrations
from monitor.cli.doctor import report, run_checks
from monitor.settings import Settings
from monitor.store import create_schema, make_engine
from tests.reliability.helpers import open_sandbox, write_rules


def test_doctor_against_the_sandbox_all_ok_then_each_problem_named(tmp_path):
    box = open_sandbox()
    try:
        rules = write_rules(tmp_path / "rules.yaml")
        url = f"sqlite:///{tmp_path / 'mm.db'}"
        engine = make_engine(url)
        create_schema(engine)
        engine.dispose()
        out = io.StringIO()
        code = report(run_checks(settings=Settings(_env_file=None), rules_path=str(rules), db_url=url,
                                 sandbox_url=box.url), out=out)
        lines = out.getvalue().splitlines()
        assert code == 0, out.getvalue()
        assert lines[1:] == [
            f"OK    rules: {rules}: 2 rules, 2 sources",
            f"OK    database: {url}: connected, schema revision {migrations.head()}",
            "OK    slack: the bot token works: mention-monitor in Nordlys",
            "OK    socket mode: the app-level token opens a Socket Mode connection (buttons, /mentions, App Home)",
            "OK    channels: the bot is in #cs-alerts, #cs-escalations, #cs-ops",
            "OK    x: the X keys post as @nordlysshop",
            "OK    facebook: the Page token works for the Page Nordlys Shop",
            "All 8 checks passed.",
        ]

        rules.write_text(rules.read_text().replace('ops: "#cs-ops"', 'ops: "#cs-opps", vip: "#cs-vip"'),
                         encoding="utf-8")
        box.slack.not_member.add("cs-vip")
        out = io.StringIO()
        report(run_checks(settings=Settings(_env_file=None), rules_path=str(rules), db_url=url,
                          sandbox_url=box.url), out=out)
        assert ("FAIL  channels: #cs-opps (rules.yaml `channels.ops`) is not a channel the bot can see; "
                "the bot is not in #cs-vip (rules.yaml `channels.vip`)\n"
                "      fix: check each name in rules.yaml and invite the bot there: /invite @mention-monitor"
                in out.getvalue())

        rules.write_text(rules.read_text().replace("severity: high", "severity: hihg"), encoding="utf-8")
        box.add_fault(platform="slack", path="/api/auth.test", status=401)
        box.add_fault(platform="facebook", path="/", status=401)
        out = io.StringIO()
        code = report(run_checks(settings=Settings(_env_file=None), rules_path=str(rules),
                                 db_url=f"sqlite:///{tmp_path / 'empty.db'}", sandbox_url=box.url), out=out)
        text = out.getvalue()
        assert code == 1
        assert f"FAIL  rules: {rules} has errors:\n      {rules}:" in text
        # a fresh install has no tables yet: expected, not a failure
        assert "WARN  database: sqlite:///" in text and "the tables do not exist yet, as expected on a fresh " in text
        assert ("FAIL  slack: Slack auth.test: the Slack token was refused (invalid_auth); check SLACK_BOT_TOKEN"
                in text) and "fix: set a fresh token in SLACK_BOT_TOKEN" in text
        assert "FAIL  facebook: Facebook rejected the Page token for the Page" in text
        assert "OK    x: the X keys post as @nordlysshop" in text
        assert text.endswith("3 of 7 checks failed; fix them and run `mention-monitor doctor` again.\n")
    finally:
        box.stop()
