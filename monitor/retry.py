"""How long to wait before trying again: one policy type, one named instance per kind of work.

A connector makes one attempt per call; whoever called it asks its policy here how long to wait
after a failure (a rate limit's own reset time, when the platform gives one, wins over these).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: timedelta  # the wait after the first failure
    cap: timedelta  # the longest wait, before jitter
    jitter: float  # the wait is drawn from [1 - jitter, 1] x the nominal wait, so replicas spread out
    doublings: int  # the wait doubles with each failure, at most this many times

    def delay(self, failures: int, *, base: timedelta | None = None) -> timedelta:
        """The wait after `failures` failures in a row (1 = the first); `base` overrides the policy's."""
        first = (base if base is not None else self.base).total_seconds()
        nominal = min(first * 2 ** min(max(failures, 1) - 1, self.doublings), self.cap.total_seconds())
        return timedelta(seconds=nominal * random.uniform(1.0 - self.jitter, 1.0))


# Polling a source: the base is the source's own interval (rules.yaml `every`), so a failing
# 30 s source waits 30 s, 60 s, 2 min ... up to 5 min.
SOURCES = RetryPolicy(base=timedelta(seconds=30), cap=timedelta(minutes=5), jitter=0.25, doublings=8)
# Slack posts and updates from the outbox: 1 s, 2 s, 4 s ... up to a minute.
DELIVERIES = RetryPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=60), jitter=0.5, doublings=6)
# Public and private platform replies (at most once: a retry looks for the reply first).
REPLIES = DELIVERIES
# A source whose token was refused: probed again after 1, 2, 4 ... up to 30 min (a 401 may be
# spurious; a fresh token resumes polling by itself). No jitter: the ops note names the time.
AUTH_PROBES = RetryPolicy(base=timedelta(minutes=1), cap=timedelta(minutes=30), jitter=0.0, doublings=6)
# Connecting Slack's Socket Mode (buttons, /mentions) while Slack cannot be reached: 5 s, 10 s ... 5 min.
SOCKET_MODE = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(minutes=5), jitter=0.25, doublings=6)
