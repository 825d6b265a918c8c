"""rules.yaml edits that used to hang, slip through or mislead: each is refused at its line:col."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import SIMPLE_RULES
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
