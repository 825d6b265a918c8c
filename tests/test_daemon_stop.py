"""Stopping the daemon while its jobs are busy: no deadlock, nothing left claimed.

CI once saw SIGTERM hang for good: APScheduler 3's shutdown(wait=True) holds its job store lock while
it waits for running jobs, and a poll that stored mentions then asked the scheduler to run the outbox
job at once (modify_job needs that lock).  These tests pin both halves of the fix deterministically.
"""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from connectors.console import ConsoleNotifier
from monitor.delivery import outbox
from monitor.model import Outbox, OutboxKind, OutboxState
from monitor.runtime.daemon import Daemon
from monitor.store import transaction


def test_stop_returns_while_a_running_job_wakes_the_outbox(engine, simple_rules, simple_rules_file):
    daemon = Daemon(engine=engine, rules_path=simple_rules_file, ruleset=simple_rules, sources={},
                    notifier=ConsoleNotifier(stream=io.StringIO()))
    daemon.start()
    assert daemon.scheduler is not None
    running, release, woke = threading.Event(), threading.Event(), threading.Event()

    def busy_poll() -> None:  # a poll that finishes storing mentions only after the stop began
        running.set()
        release.wait(10)
        daemon._wake_outbox()
        woke.set()

    # an interval job, like the daemon's own (a one-off job is removed by the scheduler's loop,
    # which may race the shutdown and raise in its thread)
    daemon.scheduler.add_job(busy_poll, "interval", hours=1, id="busy", next_run_time=datetime.now(UTC))
    assert running.wait(10)
    stopper = threading.Thread(target=daemon.stop, daemon=True)
    stopper.start()
    stopper.join(0.3)  # the scheduler is now shutting down, waiting for busy_poll
    release.set()
    stopper.join(5)
    assert not stopper.is_alive(), "stop() deadlocked behind a job that woke the outbox"
    assert woke.is_set()
    assert daemon.scheduler is None


def test_a_stop_hands_back_the_untried_rest_of_a_claimed_batch(engine, clock):
    now = clock.now()
    with transaction(engine) as s:
        for n in range(5):
            s.add(Outbox(kind=OutboxKind.CHANNEL, dedup_key=f"ops:{n}", target="#cs-ops", payload={"text": f"note {n}"},
                         next_attempt_at=now))
    notifier = ConsoleNotifier(stream=io.StringIO())
    deliverer = outbox.Deliverer(engine=engine, notifier=notifier, sources={}, worker="local")
    posted = iter(range(100))

    stats = deliverer.run_once(now=now, should_stop=lambda: next(posted) >= 2)  # SIGTERM after two posts

    assert stats.sent == 2
    assert [m.text for m in notifier.sent] == ["note 0", "note 1"]
    with transaction(engine) as s:
        rows = {r.dedup_key: r for r in s.exec(select(Outbox)).all()}
    assert [rows[f"ops:{n}"].state for n in range(5)] == [OutboxState.SENT] * 2 + [OutboxState.PENDING] * 3
    assert [rows[f"ops:{n}"].attempts for n in range(2, 5)] == [0, 0, 0], "an untried row's attempt is not counted"
    again = deliverer.run_once(now=now + timedelta(seconds=1))
    assert again.sent == 3
    assert [m.text for m in notifier.sent][2:] == ["note 2", "note 3", "note 4"]
