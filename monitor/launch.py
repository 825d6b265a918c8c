"""The `mention-monitor` command's first step: `run` restarts itself under Python's -OO.

The daemon keeps every module it imports for its whole life (about 1,000: SQLAlchemy, Slack Bolt,
tweepy, pydantic, ...), and their docstrings are a sizeable part of that code.  -OO leaves the
docstrings out (and `assert` statements, which our code uses only to narrow types for the type
checker), 4-8 MB of an idle daemon's RSS on the two machines measured (`python bench/memory.py`,
BENCHMARKS.md).

So `mention-monitor run` and `python -m monitor run` re-execute the same command line with -OO, in
the same process (os.execv keeps the PID, so systemd and supervisors see one process), before
anything heavy is imported.  Nothing is re-executed when PYTHONOPTIMIZE is set (set it to 0 to keep
docstrings and asserts, e.g. to debug) or when the interpreter already optimises; the other
commands run as they were started.  This module imports only the standard library's os and sys.
"""

from __future__ import annotations

import os
import sys

OPTIMIZE = "-OO"


def reexec_argv(argv: list[str], *, orig_argv: list[str], executable: str, optimize: int,
                environ: dict[str, str] | os._Environ[str]) -> list[str] | None:
    """The command line to execute instead of this one, or None to go on as started."""
    if not argv or argv[0] != "run" or optimize >= 2 or "PYTHONOPTIMIZE" in environ:
        return None
    if not executable or len(orig_argv) < 2:
        return None
    return [executable, OPTIMIZE, *orig_argv[1:]]


def main() -> int:
    command = reexec_argv(sys.argv[1:], orig_argv=list(sys.orig_argv), executable=sys.executable,
                          optimize=sys.flags.optimize, environ=os.environ)
    if command is not None:
        try:
            os.execv(command[0], command)
        except OSError:  # cannot re-execute (exotic launcher, no exec permission): run as started
            pass
    from monitor.cli import main as cli_main

    return cli_main()
