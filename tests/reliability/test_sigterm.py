"""SIGTERM in the middle of a busy stream: the daemon stops within 5 s, exit code 0, nothing half-done."""

from __future__ import annotations

import time
from collections import Counter

from tests.reliability.helpers import (
    DaemonProcess,
    Feeder,
    alert_case_ids,
    customer_mentions,
    open_sandbox,
    outbox_states,
    public_reply_targets,
    query,
    write_rules,
)


def test_sigterm_stops_within_five_seconds_with_nothing_half_done(tmp_path):
    sandbox = open_sandbox()
    rules = write_rules(tmp_path / "rules.yaml")
    url = f"sqlite:///{tmp_path / 'term.db'}"
    try:
        feeder = Feeder(sandbox, n=800, seconds=4.0, seed=5).start()
        daemon = DaemonProcess(sandbox_url=sandbox.url, rules=rules, db_url=url, log_path=tmp_path / "run.log")
        assert daemon.wait_for("monitor.runtime.daemon: poll", count=4, timeout=60), daemon.log_text()[-3000:]
        time.sleep(0.7)  # mid-stream: pages being stored, alerts and replies being delivered
        code, took = daemon.terminate(timeout=15)
        log = daemon.log_text()
        assert code == 0, log[-3000:]
        assert took < 5.0, f"took {took:.1f} s to stop"
        print(f"\nsigterm: first stop in {took:.2f}s")
        assert "Stopping: finishing the current step" in log
        assert "Traceback" not in log, log[-3000:]

        # nothing half-done: no delivery left claimed, every stored urgent mention has its case and alert row
        assert outbox_states(url)["sending"] == 0
        orphans = query(url, "select count(*) from mention where rule = 'urgent' and case_id is null")
        assert orphans == [(0,)]
        no_alert = query(url, "select count(*) from \"case\" c where not exists "
                              "(select 1 from outbox o where o.dedup_key = 'alert:' || c.id)")
        assert no_alert == [(0,)]
        stored_at_stop = len(customer_mentions(url))
        assert 0 < stored_at_stop

        # a restart carries on from the cursor: everything once, nothing twice
        feeder.join(timeout=30)
        again = DaemonProcess(sandbox_url=sandbox.url, rules=rules, db_url=url, log_path=tmp_path / "again.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = outbox_states(url)
            if len(customer_mentions(url)) == feeder.injected.total and not states["pending"] \
                    and not states["sending"] and len(alert_case_ids(sandbox)) >= len(feeder.injected.urgent):
                break
            time.sleep(0.3)
        code, took = again.terminate(timeout=15)
        assert code == 0 and took < 5.0
        stored = customer_mentions(url)
        assert len(stored) == len(set(stored)) == feeder.injected.total, (
            Counter(p for p, _ in stored), query(url, "select * from cursor"), query(url, "select * from sourcehealth"))
        assert max(Counter(alert_case_ids(sandbox)).values()) == 1
        assert len(alert_case_ids(sandbox)) == len(feeder.injected.urgent)
        assert max(Counter(public_reply_targets(sandbox)).values()) == 1
        print(f"\nsigterm: stopped in {took:.2f}s with {stored_at_stop} of {feeder.injected.total} stored")
    finally:
        sandbox.stop()
