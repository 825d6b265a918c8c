"""The daemon recovers by itself when its database comes back: a SQLite file that was read-only,
a full disk, a lock held by another process, a PostgreSQL restart.  Nothing fetched meanwhile is
lost and each mention is stored once.  Faults are SQLite's and PostgreSQL's own errors (bench/db_faults.py
times the recovery with the scheduler running)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import sqlalchemy as sa
from sqlalchemy import event

from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings
from monitor.store import make_engine
from tests.conftest import drop_schema, postgres_url_or_skip
from tests.reliability.helpers import customer_mentions


def daemon_on(sandbox, url, rules, rules_file, clock):
    settings = Settings(_env_file=None)
    sources = {n: b for n, b in build_sources(settings=settings, ruleset=rules, sandbox_url=sandbox.url,
                                              clock=clock).items() if n == "x-mentions"}
    return build_daemon(settings=settings, ruleset=rules, rules_path=str(rules_file), db_url=url,
                        sandbox_url=sandbox.url, clock=clock, sources=sources, worker="replica-a")


def poll(daemon, clock) -> str:
    """The next scheduled poll: after the source's pacing (the sandbox's rate-limit window) allows it."""
    from monitor.model import SourceHealth
    from monitor.store import transaction

    try:
        with transaction(daemon.engine) as s:
            health = s.get(SourceHealth, "x-mentions")
            retry_at = health.retry_at if health is not None else None
    except sa.exc.OperationalError:  # the read fails under the fault too
        retry_at = None
    if retry_at is not None and retry_at > clock.now():
        clock.set(retry_at)
    return daemon.poll("x-mentions").status


def tweet(sandbox, i: int) -> None:
    uid = str(700_000_000 + i)
    sandbox.add_tweets([{"tweet": {"text": f"@nordlysshop order {i} arrived broken", "author_id": uid, "lang": "en"},
                         "author": {"id": uid, "username": f"cust{i}", "name": f"Customer {i}"}}])


class SqliteFault:
    """A SQLite refusal on the daemon's own engine, as SQLite itself reports it: `query_only` gives
    'attempt to write a readonly database' (what a read-only file or mount gives; root, which runs the
    tests, ignores file modes), `max_page_count` gives 'database or disk is full'.  Connections opened
    while the fault is on carry it; the ones opened after it is lifted do not, as with the real file.
    A read-only open sticks to its connection (the bug: the pool kept those); the room on a disk is the
    file system's, so lifting a full disk lifts it for every connection (`in_connection=False`)."""

    def __init__(self, engine, pragma: str, *, in_connection: bool = True) -> None:
        self.engine, self.pragma, self.in_connection = engine, pragma, in_connection

    def _on_connect(self, dbapi_conn, _record) -> None:
        dbapi_conn.execute(self.pragma)

    def __enter__(self):
        self.engine.pool.dispose()  # the pooled connections open again, under the fault
        event.listen(self.engine, "connect", self._on_connect)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "connect", self._on_connect)  # the file is writable again
        if not self.in_connection:
            self.engine.pool.dispose()


def full_disk_pragma(engine) -> str:
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    return f"PRAGMA max_page_count={pages}"  # not one page more: the next mention does not fit


def test_after_a_read_only_spell_the_daemon_stores_again_without_a_restart(tmp_path, sandbox, simple_rules,
                                                                           simple_rules_file, clock, caplog):
    url = f"sqlite:///{tmp_path / 'mm.db'}"
    daemon = daemon_on(sandbox, url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, 1)
    assert poll(daemon, clock) == "ok"
    with caplog.at_level(logging.WARNING, logger="monitor.runtime.daemon"), \
            SqliteFault(daemon.engine, "PRAGMA query_only=ON"):
        tweet(sandbox, 2)
        clock.advance(60)
        assert [poll(daemon, clock) for _ in range(3)] == ["database_unavailable"] * 3
        assert daemon.database_down_since is not None
    assert poll(daemon, clock) == "ok", "the first poll after the file is writable stores again"
    tweet(sandbox, 3)
    assert poll(daemon, clock) == "ok"
    stored = customer_mentions(url)
    assert len(stored) == len(set(stored)) == 3
    errors = [r.getMessage() for r in caplog.records if r.name == "monitor.runtime.daemon"]
    assert sum("database unavailable: attempt to write a readonly database" in e for e in errors) == 1, errors
    assert any(e.startswith("database available again after") for e in errors)
    daemon.engine.dispose()


def test_after_the_disk_was_full_the_mentions_fetched_meanwhile_are_stored_once(tmp_path, sandbox, simple_rules,
                                                                                simple_rules_file, clock):
    url = f"sqlite:///{tmp_path / 'mm.db'}"
    daemon = daemon_on(sandbox, url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, 1)
    assert poll(daemon, clock) == "ok"
    with SqliteFault(daemon.engine, full_disk_pragma(daemon.engine), in_connection=False):
        for i in range(2, 40):
            tweet(sandbox, i)
        assert poll(daemon, clock) == "database_unavailable"
    assert poll(daemon, clock) == "ok"
    stored = customer_mentions(url)
    assert len(stored) == len(set(stored)) == 39
    daemon.engine.dispose()


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def test_a_lock_held_by_another_process_delays_the_poll_and_loses_nothing(tmp_path, sandbox, simple_rules,
                                                                          simple_rules_file, clock):
    path = tmp_path / "mm.db"
    daemon = daemon_on(sandbox, f"sqlite:///{path}", simple_rules, simple_rules_file, clock)
    tweet(sandbox, 1)
    assert poll(daemon, clock) == "ok"
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        tweet(sandbox, 2)
        outcome: list[str] = []
        poller = threading.Thread(target=lambda: outcome.append(poll(daemon, clock)))
        poller.start()
        poller.join(timeout=0.5)
        assert poller.is_alive() and outcome == [], "the poll waits for the lock (busy_timeout) instead of failing"
        locker.stdin.write("\n")
        locker.stdin.flush()
        poller.join(timeout=30)
        assert outcome == ["ok"]
    finally:
        locker.kill()
        locker.wait()
    stored = customer_mentions(f"sqlite:///{path}")
    assert len(stored) == len(set(stored)) == 2
    daemon.engine.dispose()


def terminate_backends(url: str) -> int:
    """What a PostgreSQL restart does to our sessions (the server itself is shared: it stays up)."""
    database = sa.engine.make_url(make_engine(url).url).database
    admin = make_engine(url.rsplit("/", 1)[0] + "/postgres").execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return len(conn.execute(sa.text("select pg_terminate_backend(pid) from pg_stat_activity "
                                            "where datname = :d and pid <> pg_backend_pid()"), {"d": database}).all())
    finally:
        admin.dispose()


def test_after_postgresql_drops_our_sessions_the_next_poll_stores(sandbox, simple_rules, simple_rules_file, clock):
    url = postgres_url_or_skip()
    engine = make_engine(url)
    drop_schema(engine)
    engine.dispose()
    daemon = daemon_on(sandbox, url, simple_rules, simple_rules_file, clock)
    tweet(sandbox, 1)
    assert poll(daemon, clock) == "ok"
    assert terminate_backends(url) >= 1
    tweet(sandbox, 2)
    assert poll(daemon, clock) == "ok"
    daemon.deliver()
    stored = customer_mentions(url)
    assert len(stored) == len(set(stored)) == 2
    daemon.engine.dispose()
