"""Scale-out on PostgreSQL: two replicas on one database share the sandbox stream; one is SIGKILLed.

Leases are kept between polls when a source is polled less often than the lease TTL (heartbeat),
the survivor takes the dead replica's sources within the TTL, and nothing is lost or done twice.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from monitor.store import SCHEMA_VERSION, create_schema, make_engine
from tests.conftest import drop_schema, postgres_url_or_skip
from tests.reliability.helpers import (
    DaemonProcess,
    Feeder,
    alert_case_ids,
    clean_env,
    customer_mentions,
    open_sandbox,
    outbox_states,
    public_reply_targets,
    query,
    write_rules,
)

LEASE_TTL_S = 2.0
POLL_EVERY_S = 4  # longer than the lease: only the heartbeat keeps a live replica's lease


def leases(url: str) -> dict[str, tuple[str, datetime | None]]:
    rows = query(url, "select name, holder, expires_at from lease where name like 'source:%'")  # not replica:*
    return {name: (holder, expires) for name, holder, expires in rows}


def test_two_replicas_one_killed_no_duplicates_nothing_lost_takeover_within_ttl(tmp_path):
    url = postgres_url_or_skip()
    engine = make_engine(url)
    drop_schema(engine)
    create_schema(engine)
    engine.dispose()
    sandbox = open_sandbox()
    rules = write_rules(tmp_path / "rules.yaml", every=f"{POLL_EVERY_S}s")
    replicas = {}
    try:
        feeder = Feeder(sandbox, n=600, seconds=12.0, seed=3).start()
        for rid in ("replica-a", "replica-b"):
            env = clean_env(MENTION_MONITOR_REPLICA_ID=rid, MENTION_MONITOR_LEASE_TTL=str(LEASE_TTL_S),
                            MENTION_MONITOR_CLAIM_TTL="5")
            replicas[rid] = DaemonProcess(sandbox_url=sandbox.url, rules=rules, db_url=url,
                                          log_path=tmp_path / f"{rid}.log", env=env)
        assert any(r.wait_for("monitor.runtime.daemon: poll", timeout=60) for r in replicas.values())

        # the two sources are spread, one per replica (each takes at most its share), within a few s
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len({h for h, _ in leases(url).values() if h}) < 2:
            time.sleep(0.1)
        # then for 3 poll intervals the same live replica holds each source: no hand-over between polls
        first = leases(url)
        assert set(first) == {"source:x-mentions", "source:fb-comments"}
        assert {holder for holder, _ in first.values()} == set(replicas), f"not spread: {first}"
        for _ in range(int(3 * POLL_EVERY_S / 0.25)):
            now = datetime.now(UTC).replace(tzinfo=None)  # the lease table stores naive UTC
            current = leases(url)
            for name, (holder, expires) in current.items():
                assert holder == first[name][0], f"{name} moved from {first[name][0]} to {holder} between polls"
                assert expires is not None and expires > now, f"{name}: {holder}'s lease lapsed between polls"
            time.sleep(0.25)

        victim = first["source:x-mentions"][0]
        survivor = next(r for r in replicas if r != victim)
        replicas[victim].kill()
        killed_at = time.monotonic()
        takeover = None
        while time.monotonic() - killed_at < 20:
            now = datetime.now(UTC).replace(tzinfo=None)  # the lease table stores naive UTC
            if all(h == survivor and e and e > now for h, e in leases(url).values()):
                takeover = time.monotonic() - killed_at
                break
            time.sleep(0.05)
        assert takeover is not None and takeover <= LEASE_TTL_S + 2.0, f"takeover after {takeover}"

        feeder.join(timeout=30)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = outbox_states(url)
            if len(customer_mentions(url)) == feeder.injected.total and not states["pending"] \
                    and not states["sending"] and len(set(alert_case_ids(sandbox))) >= len(feeder.injected.urgent):
                break
            time.sleep(0.5)
        code, _ = replicas[survivor].terminate(timeout=15)
        assert code == 0

        stored = customer_mentions(url)
        assert len(stored) == len(set(stored)) == feeder.injected.total
        alerts = alert_case_ids(sandbox)
        assert {c: n for c, n in Counter(alerts).items() if n > 1} == {}
        assert len(alerts) == len(feeder.injected.urgent)
        replies = public_reply_targets(sandbox)
        assert {t: n for t, n in Counter(replies).items() if n > 1} == {}
        assert outbox_states(url)["failed"] == 0
        workers = Counter(w for (w,) in query(url, "select claimed_by from outbox"))
        print(f"\nreplicas: killed {victim}, {survivor} took over in {takeover:.2f}s; mentions={len(stored)} "
              f"alerts={len(alerts)} replies={len(replies)} unknown={outbox_states(url)['unknown']} {dict(workers)}")
    finally:
        for r in replicas.values():
            if r.alive():
                r.kill()
        sandbox.stop()


def test_replicas_starting_together_on_a_fresh_database_all_create_the_schema(tmp_path):
    """Concurrent create_all crashed one replica (UniqueViolation on pg_type_typname_nsp_index)."""
    import threading

    url = postgres_url_or_skip()
    admin = make_engine(url)
    try:
        for _ in range(3):
            drop_schema(admin)
            engines = [make_engine(url) for _ in range(4)]
            start, errors = threading.Barrier(len(engines)), []

            def replica(engine, start=start, errors=errors) -> None:
                start.wait()
                try:
                    create_schema(engine)
                except Exception as exc:  # what a replica would crash with
                    errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

            threads = [threading.Thread(target=replica, args=(e,)) for e in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            for engine in engines:
                engine.dispose()
            assert errors == []
            assert query(url, "select value from setting where key = 'schema_version'") == [(SCHEMA_VERSION,)]
    finally:
        admin.dispose()
