"""`mention-monitor doctor`: one line per check, what is wrong and how to fix it, exit 0 only when all is well."""

from __future__ import annotations

import io

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
            f"OK    database: {url}: connected, schema version 1",
            "OK    slack: the bot token works: mention-monitor in Nordlys",
            "OK    x: the X keys post as @nordlysshop",
            "OK    facebook: the Page token works for the Page Nordlys Shop",
            "All 6 checks passed.",
        ]

        rules.write_text(rules.read_text().replace("severity: high", "severity: hihg"), encoding="utf-8")
        box.add_fault(platform="slack", path="/api/auth.test", status=401)
        box.add_fault(platform="facebook", path="/", status=401)
        out = io.StringIO()
        code = report(run_checks(settings=Settings(_env_file=None), rules_path=str(rules),
                                 db_url=f"sqlite:///{tmp_path / 'empty.db'}", sandbox_url=box.url), out=out)
        text = out.getvalue()
        assert code == 1
        assert f"FAIL  rules: {rules} has errors:\n      {rules}:" in text
        assert "FAIL  database: sqlite:///" in text and "the tables do not exist yet\n      fix: start " in text
        assert ("FAIL  slack: Slack auth.test: the Slack token was refused (invalid_auth); check SLACK_BOT_TOKEN"
                in text) and "fix: set a fresh token in SLACK_BOT_TOKEN" in text
        assert "FAIL  facebook: Facebook rejected the Page token for the Page" in text
        assert "OK    x: the X keys post as @nordlysshop" in text
        assert text.endswith("4 of 6 checks failed; fix them and run `mention-monitor doctor` again.\n")
    finally:
        box.stop()
