"""This process's local files and helpers: where the compact model caches live, and the environment
a short-lived child process (a cache builder, the digest's chart renderer) starts with."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)  # the folder that holds monitor/


def cache_root() -> Path:
    """$MENTION_MONITOR_CACHE, else $XDG_CACHE_HOME, else ~/.cache; then mention-monitor/."""
    root = os.environ.get("MENTION_MONITOR_CACHE") or os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(root).expanduser() / "mention-monitor"


def child_env() -> dict[str, str]:
    """Our environment, with this package first on PYTHONPATH, so a child imports the same code."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
