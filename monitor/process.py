"""This process's local files and helpers: where the compact model caches live, and the environment
a short-lived child process (a cache builder, the digest's chart renderer) starts with."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder that holds monitor/


def cache_root() -> Path:
    """$MENTION_MONITOR_CACHE, else $XDG_CACHE_HOME, else ~/.cache; then mention-monitor/."""
    root = os.environ.get("MENTION_MONITOR_CACHE") or os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(root).expanduser() / "mention-monitor"


def child_env() -> dict[str, str]:
    """Our environment, with this package first on PYTHONPATH, so a child imports the same code."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}


def put_in_place(staging: Path, directory: Path, *, ready: Callable[[Path], bool]) -> None:
    """Make the fully written folder `staging` the cache `directory`: dropped instead if another
    process finished first (`ready(directory)`); a stale or broken copy there is set aside and
    replaced.  OSError is the caller's to handle (staging is then still there)."""
    if ready(directory):
        shutil.rmtree(staging, ignore_errors=True)
        return
    if directory.exists():
        stale = Path(tempfile.mkdtemp(dir=directory.parent))
        try:
            directory.rename(stale / "old")
        except OSError:
            pass
        shutil.rmtree(stale, ignore_errors=True)
    staging.rename(directory)
