"""A digest's charts are drawn in a child process: the daemon never keeps matplotlib loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A fresh interpreter, so nothing else in the test session has imported matplotlib already.
_DAEMON_SIDE = """
import sys
from datetime import UTC, datetime
from connectors.sandbox.server import Sandbox
from connectors.slack.notifier import SlackNotifier
from monitor.report.digest import post_digest
from monitor.store import create_schema, make_engine
from tests.test_digest import rules
from tests.test_report import load_week

# the report tests' fixture loader imports the charts module: forget it, so only the digest could load it again
for name in [n for n in sys.modules if n.split(".")[0] == "matplotlib" or n == "monitor.report.charts"]:
    del sys.modules[name]
engine = make_engine("sqlite:///" + sys.argv[1])
create_schema(engine)
load_week(engine)
sandbox = Sandbox().start()
try:
    slack = SlackNotifier(token="xoxb-test", base_url=sandbox.url, timeout=5.0)
    assert post_digest(engine=engine, notifier=slack, ruleset=rules(), now=datetime(2026, 11, 23, 8, 0, 2, tzinfo=UTC))
    posts = [m for m in sandbox.slack_messages() if m.get("files")]
    print(len(posts), len(posts[0]["files"]), "matplotlib" in sys.modules)
finally:
    sandbox.stop()
"""


def test_digest_posts_its_charts_and_leaves_matplotlib_unloaded(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _DAEMON_SIDE, str(tmp_path / "digest.db")], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    posts, files, matplotlib_loaded = done.stdout.split()
    assert (posts, files, matplotlib_loaded) == ("1", "3", "False")
