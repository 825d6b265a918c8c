"""`mention-monitor run` restarts itself under Python's -OO (monitor/launch.py): same PID, same command line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from monitor.launch import reexec_argv
from tests.reliability.helpers import DaemonProcess, open_sandbox, write_rules

CONSOLE = ["/venv/bin/python3", "/venv/bin/mention-monitor", "run", "--db", "sqlite:///m.db"]


def decide(argv: list[str], *, orig: list[str] | None = None, optimize: int = 0,
           environ: dict[str, str] | None = None) -> list[str] | None:
    return reexec_argv(argv, orig_argv=orig or CONSOLE, executable="/venv/bin/python3", optimize=optimize,
                       environ=environ if environ is not None else {})


def test_run_is_executed_again_with_OO_and_its_own_arguments():
    assert decide(["run", "--db", "sqlite:///m.db"]) == ["/venv/bin/python3", "-OO", "/venv/bin/mention-monitor",
                                                         "run", "--db", "sqlite:///m.db"]
    # python -m monitor run: the interpreter's own options stay, -OO goes first
    assert decide(["run"], orig=["python", "-X", "utf8", "-m", "monitor", "run"]) == [
        "/venv/bin/python3", "-OO", "-X", "utf8", "-m", "monitor", "run"]


def test_other_commands_an_optimised_interpreter_and_PYTHONOPTIMIZE_run_as_started():
    assert decide(["check-rules", "rules.yaml"]) is None
    assert decide([]) is None
    assert decide(["run"], optimize=2) is None  # already -OO: no loop
    assert decide(["run"], environ={"PYTHONOPTIMIZE": "0"}) is None  # the documented opt-out
    assert decide(["run"], environ={"PYTHONOPTIMIZE": "1"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/cmdline")
def test_the_daemon_runs_under_OO_in_the_process_that_was_started(tmp_path):
    sandbox = open_sandbox()
    try:
        daemon = DaemonProcess(sandbox_url=sandbox.url, rules=write_rules(tmp_path / "rules.yaml"),
                               db_url=f"sqlite:///{tmp_path / 'launch.db'}", log_path=tmp_path / "run.log")
        assert daemon.wait_for("monitor.runtime.daemon: poll", timeout=60), daemon.log_text()[-3000:]
        # the PID the supervisor started is the daemon's, now running `python -OO -m monitor run ...`
        cmdline = Path(f"/proc/{daemon.proc.pid}/cmdline").read_bytes().decode().split("\0")
        assert cmdline[:5] == [sys.executable, "-OO", "-m", "monitor", "run"], cmdline
        code, _ = daemon.terminate(timeout=15)
        assert code == 0, daemon.log_text()[-3000:]
        assert "Traceback" not in daemon.log_text()
    finally:
        sandbox.stop()
