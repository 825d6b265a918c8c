"""rules.yaml edits that used to hang, slip through or mislead: each is refused at its line:col."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from monitor.rules import RulesError, load_rules
from tests.conftest import SIMPLE_RULES
from tests.reliability.helpers import slack_pings
from tests.reliability.test_hot_reload import make_daemon, ops

LAUGHS = """\
laughs:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""
BOMB_ERROR = ("aliases (*name) expand this file to more than 20,000 values; "
              "write the values out instead of repeating them through aliases")


def check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "check-rules", str(path)], capture_output=True,
                          text=True, timeout=60)


def test_alias_bomb_is_refused_at_its_first_alias_in_seconds(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(SIMPLE_RULES + LAUGHS, encoding="utf-8")
    line = SIMPLE_RULES.count("\n") + 3  # "b: &b [*a, ..." : the first alias
    done = check_rules(path)
    assert done.returncode == 1
    assert done.stdout + done.stderr == f"{path}:{line}:10: {BOMB_ERROR}\n"


def test_alias_that_contains_itself_is_refused_at_its_line(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(SIMPLE_RULES + "loop: &loop [1, *loop]\n", encoding="utf-8")
    done = check_rules(path)
    line = SIMPLE_RULES.count("\n") + 1
    assert (done.returncode, done.stdout + done.stderr) == (
        1, f"{path}:{line}:17: this alias (*name) refers to a value that contains it; write the value out instead\n")


def test_a_harmless_alias_is_still_allowed(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(SIMPLE_RULES.replace("keywords: [nordlys]", "keywords: &kw [nordlys]")
                    .replace("keywords_any: [invoice]", "keywords_any: *kw"), encoding="utf-8")
    assert check_rules(path).returncode == 0


def test_oversized_file_is_refused_without_being_parsed(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(SIMPLE_RULES + "# padding\n" * 30_000, encoding="utf-8")
    done = check_rules(path)
    assert (done.returncode, done.stdout + done.stderr) == (
        1, f"{path}:1:1: the file is larger than 256 KB; a rules file is a few KB, so this is not one\n")


def test_alias_bomb_saved_while_running_is_a_refused_edit_reported_once(sandbox, tmp_path, clock):
    daemon, path = make_daemon(sandbox, tmp_path, clock)
    good = path.read_text(encoding="utf-8")
    path.write_text(good + LAUGHS, encoding="utf-8")
    line = good.count("\n") + 3
    outcomes: list[bool] = []
    for _ in range(3):  # the watcher looks again and again: refused once, reported once
        reload = threading.Thread(target=lambda: outcomes.append(daemon.reload_rules()), daemon=True)
        reload.start()
        reload.join(timeout=30)
        assert not reload.is_alive(), "the reload is still parsing the alias bomb after 30 s"
        daemon.drain()
    assert outcomes == [False, False, False]
    assert ops(sandbox) == [f":no_entry: rules.yaml edit refused, the previous rules stay in force:\n"
                            f"```{path}:{line}:10: {BOMB_ERROR}```"]
    assert "broken" in str(daemon.ruleset.rules[1])  # the last good rules are in force
    daemon.engine.dispose()


def _edit(old: str, new: str) -> str:
    assert old in SIMPLE_RULES
    return SIMPLE_RULES.replace(old, new)


WHEN = "when: {keywords_any: [invoice]}"  # rules[1]
L = next(n for n, text in enumerate(SIMPLE_RULES.splitlines(), 1) if WHEN in text)  # its line
REFUSED_EDITS = [
    pytest.param(_edit(WHEN, "when: {complaint: {min: 60}}"),
                 [f"{L}:29: rules[1].when.complaint.min: must be a probability between 0 and 1; got 60 "
                  "(write 0.6 for 60%)"], id="complaint-as-percent"),
    pytest.param(_edit(WHEN, "when: {sentiment: {max: -50}}"),
                 [f"{L}:29: rules[1].when.sentiment.max: must be a sentiment score between -1 (most negative) "
                  "and 1 (most positive); got -50 (write -0.5 for -50%)"], id="sentiment-as-percent"),
    pytest.param(_edit(WHEN, "when: {complaint: {max: 1.5}}"),
                 [f"{L}:29: rules[1].when.complaint.max: must be a probability between 0 and 1; got 1.5"],
                 id="complaint-over-one"),
    pytest.param(_edit(WHEN, "when: {followers: {min: -10}}"),
                 [f"{L}:29: rules[1].when.followers.min: must be at least 0, got -10"], id="negative-followers"),
    pytest.param(_edit("warn_at: 0.75", "warn_at: 75"),
                 ["21:12: escalation.warn_at: must be a fraction of the SLA between 0 and 1, like 0.75; got 75 "
                  "(write 0.75 for 75%)"], id="warn-at-as-percent"),
    pytest.param(_edit("sla: 1h, business_hours", "sla: 0m, business_hours"),
                 [f"{L + 1}:53: rules[1].alert.sla: must be longer than 0s"], id="zero-sla"),
    pytest.param(_edit(f"    {WHEN}\n", ""),
                 [f"{L - 1}:5: rule 'business-hours-complaint' has no 'when', so it would match every mention; "
                  "write when: {all: []} if that is what you mean"], id="rule-without-when"),
    pytest.param(_edit(WHEN, "when: {}"),
                 [f"{L}:11: rules[1].when: an empty condition {{}} matches every mention; "
                  "write when: {all: []} if that is what you mean, or add a condition"], id="empty-when"),
    pytest.param(_edit(WHEN, "when: {any: [{keywords_any: [x]}, {}]}"),
                 [f"{L}:39: rules[1].when.any[1]: an empty condition {{}} matches every mention; "
                  "write when: {all: []} if that is what you mean, or add a condition"], id="empty-branch"),
    pytest.param(_edit("holidays: [2026-12-24]", "holidays: [2026-02-30]"),
                 ["19:29: '2026-02-30' is not a date on the calendar (day is out of range for month); "
                  "write it like 2026-12-24, or 12-24 for every year"], id="february-30"),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED_EDITS)
def test_check_rules_refuses_the_edit_at_its_line_and_column(tmp_path, text, expected):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_errors(path) == [f"{path}:{where}" for where in expected]


def test_when_all_empty_says_every_mention_on_purpose(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(_edit(WHEN, "when: {all: []}"), encoding="utf-8")
    assert check_rules(path).returncode == 0


def test_percent_complaint_saved_while_running_is_refused_in_ops_at_its_line(sandbox, tmp_path, clock):
    daemon, path = make_daemon(sandbox, tmp_path, clock)
    good = path.read_text(encoding="utf-8")
    line = next(n for n, text in enumerate(good.splitlines(), 1) if "keywords_any: [broken]" in text)
    col = good.splitlines()[line - 1].index("keywords_any") + 1
    path.write_text(good.replace("keywords_any: [broken]", "complaint: {min: 60}"), encoding="utf-8")
    assert daemon.reload_rules() is False
    daemon.drain()
    assert ops(sandbox) == [
        ":no_entry: rules.yaml edit refused, the previous rules stay in force:\n"
        f"```{path}:{line}:{col + 17}: rules[1].when.complaint.min: must be a probability between 0 and 1; "
        "got 60 (write 0.6 for 60%)```"]
    daemon.engine.dispose()


def load_errors(path: Path) -> list[str]:
    try:
        load_rules(path)
    except RulesError as exc:
        return exc.errors
    return []


def test_refused_edit_quoting_backticks_and_a_ping_cannot_ping_or_break_the_ops_message(sandbox, tmp_path, clock):
    daemon, path = make_daemon(sandbox, tmp_path, clock)
    good = path.read_text(encoding="utf-8")
    path.write_text(good.replace("severity: high", 'severity: "```<!channel> @here"'), encoding="utf-8")
    assert daemon.reload_rules() is False
    daemon.drain()
    [text] = ops(sandbox)
    assert slack_pings(sandbox) == []
    assert text.count("```") == 2 and text.startswith(":no_entry: ") and text.endswith("```")
    assert "`\u2060`\u2060`\u2060&lt;!channel&gt; @\u2060here" in text
    daemon.engine.dispose()


def test_an_edit_with_1200_errors_lists_the_first_20_and_a_count(sandbox, tmp_path, clock):
    daemon, path = make_daemon(sandbox, tmp_path, clock)
    good = path.read_text(encoding="utf-8")
    extra = "".join(f"  - {{name: extra{n}, when: {{all: []}}, alert: {{chanel: alerts, sla: 1h}}}}\n"
                    for n in range(1200))
    path.write_text(good + extra, encoding="utf-8")
    assert daemon.reload_rules() is False
    daemon.drain()
    [text] = ops(sandbox)
    assert len(text) < 6000
    listed = text.split("```")[1].splitlines()
    assert len(listed) == 20 and all("unknown key 'chanel'" in line for line in listed)
    assert text.endswith("```\n…and 1,180 more errors: run `mention-monitor check-rules` to see them all.")
    daemon.engine.dispose()
