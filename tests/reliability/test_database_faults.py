"""A database the daemon cannot write to stops it at start with a clear message, instead of a daemon
that runs on while every mention it fetches is refused."""

from __future__ import annotations

import subprocess
import sys

from monitor.store import create_schema, make_engine
from tests.reliability.helpers import clean_env, open_sandbox, write_rules


def test_run_on_a_read_only_sqlite_database_fails_at_start_with_what_to_do(tmp_path):
    path = tmp_path / "mm.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    engine.dispose()
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"  # what a read-only file or mount gives
    sandbox = open_sandbox()
    try:
        rules = write_rules(tmp_path / "rules.yaml")
        done = subprocess.run([sys.executable, "-m", "monitor", "run", "--once", "--sandbox-url", sandbox.url,
                               "--rules", str(rules), "--db", read_only], capture_output=True, text=True,
                              timeout=120, env=clean_env())
    finally:
        sandbox.stop()
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"cannot write to the database {read_only} (attempt to write a readonly database). mention-monitor "
        "stores each mention before it acts on it, so it does not start on a database it cannot write to: "
        "make the file and its folder writable (SQLite also writes -wal and -shm files beside it), free disk "
        "space, or point DATABASE_URL (--db) at a writable database.")
