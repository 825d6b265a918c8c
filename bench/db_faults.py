"""Time to recover from database outages, each on its own, with the daemon's own scheduler running.

    python bench/db_faults.py                         # all four, 10 s outages, a 30 s lock
    python bench/db_faults.py --fault lock --lock-seconds 30
    python bench/db_faults.py --fault postgres --outage 10

An in-process daemon (real tweepy against the loopback sandbox, the x-mentions source polled every
--poll-interval seconds) while a tweet is posted every 0.1 s.  Each fault is SQLite's or PostgreSQL's own:
  readonly   the daemon's SQLite connections open read-only (PRAGMA query_only: what a read-only file
             or mount gives; root ignores file modes), then the file is writable again
  full       SQLite on a small tmpfs (needs root: mount) filled to the last byte, then the filler deleted;
             without root, PRAGMA max_page_count at the file's size
  lock       another process holds BEGIN EXCLUSIVE on the SQLite file for --lock-seconds
  postgres   PostgreSQL reached through a TCP proxy this program runs; the proxy drops every connection
             and refuses new ones for --outage seconds (the machine's server stays up)
For each: recover_s = first mention stored after the fault ended - when it ended; then every posted
tweet must be stored exactly once.  The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import emit, machine
from sqlalchemy import event

from connectors.sandbox import Sandbox
from monitor.rules import load_rules
from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings
from monitor.store import make_engine

PG_URL = os.environ.get("MM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RULES = """\
version: 1
brand:
  name: Nordlys Shop
  default_language: en
  languages: [en]
  handles: {{x: nordlysshop}}
  x_user_id: "1600000000000000001"
  keywords: [nordlys]
sources:
  - {{name: x-mentions, platform: x, kind: mention, every: {every}s}}
channels: {{alerts: "#cs-alerts", ops: "#cs-ops"}}
rules:
  - name: urgent
    when: {{keywords_any: [broken]}}
    alert: {{channel: alerts, severity: high, sla: 30m}}
"""


class Proxy:
    """A TCP proxy to PostgreSQL that can drop its connections and refuse new ones (a server restart)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    (b if src is a else a).sendall(data)
        except OSError:
            return
        finally:
            a.close()
            b.close()

    def outage(self) -> None:
        self.down.set()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def restore(self) -> None:
        self.down.clear()


def count(url: str) -> tuple[int, int]:
    """(stored customer mentions, distinct ones), read on a connection of our own."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(sa.text(  # type: ignore[return-value]
                "select count(*), count(distinct external_id) from mention where not from_brand")).one())
    except sa.exc.OperationalError:
        return (-1, -1)
    finally:
        engine.dispose()


def pragma_fault(engine: Any, pragma: str) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(pragma)

    engine.pool.dispose()
    event.listen(engine, "connect", on_connect)

    def lift(*, drop_pool: bool) -> None:
        event.remove(engine, "connect", on_connect)
        if drop_pool:
            engine.pool.dispose()
    return lift


def run(fault: str, *, outage: float, lock_seconds: float, every: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"mm-dbfault-{fault}-"))
    mounted = False
    proxy = None
    if fault == "full" and os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(tmp)]).returncode == 0
    if fault == "postgres":
        db_name = f"mm_bench_faults_{os.getpid()}"
        admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {db_name}"))
            conn.execute(sa.text(f"CREATE DATABASE {db_name}"))
        target = sa.engine.make_url(PG_URL)
        proxy = Proxy((target.host or "127.0.0.1", target.port or 5432))
        url = f"postgresql://{target.username}@127.0.0.1:{proxy.port}/{db_name}"
        direct = PG_URL.rsplit("/", 1)[0] + "/" + db_name
    else:
        url = direct = f"sqlite:///{tmp / 'mm.db'}"
    rules_file = tmp / "rules.yaml"
    rules_file.write_text(RULES.format(every=max(1, round(every))))
    ruleset = load_rules(rules_file)
    box = Sandbox(port=0).start()
    box.configure(slack_burst=1_000_000, slack_refill_per_s=1000.0,
                  x_limits={"mentions": (1_000_000, 900), "me": (1_000_000, 86400)})
    settings = Settings(_env_file=None)
    daemon = build_daemon(settings=settings, ruleset=ruleset, rules_path=str(rules_file), db_url=url,
                          sandbox_url=box.url, sources=build_sources(settings=settings, ruleset=ruleset,
                                                                     sandbox_url=box.url))
    posted = {"n": 0}
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            i = posted["n"] = posted["n"] + 1
            uid = str(700_000_000 + i)
            box.add_tweets([{"tweet": {"text": f"@nordlysshop order {i} arrived broken", "author_id": uid},
                             "author": {"id": uid, "username": f"c{i}", "name": f"C {i}"}}])
            time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    daemon.start()
    feeder.start()
    time.sleep(3 * every)
    filler = tmp / "filler"
    locker = None
    lift: Any = None
    if fault == "readonly":
        lift = pragma_fault(daemon.engine, "PRAGMA query_only=ON")
        time.sleep(outage)
    elif fault == "full" and mounted:
        try:
            with filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
        except OSError:
            pass
        time.sleep(outage)
    elif fault == "full":
        with daemon.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
        lift = pragma_fault(daemon.engine, f"PRAGMA max_page_count={pages}")
        time.sleep(outage)
    elif fault == "lock":
        locker = subprocess.Popen([sys.executable, "-c", "import sqlite3,sys\n"
                                   "c=sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                                   "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.readline()",
                                   str(tmp / "mm.db")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        time.sleep(lock_seconds)
    elif fault == "postgres":
        assert proxy is not None
        proxy.outage()
        time.sleep(outage)
    before = count(direct)[0]
    if fault == "readonly":
        lift(drop_pool=False)
    elif fault == "full" and mounted:
        filler.unlink()
    elif fault == "full":
        lift(drop_pool=True)
    elif fault == "lock":
        assert locker is not None and locker.stdin is not None
        locker.stdin.write("\n")
        locker.stdin.flush()
        locker.wait()
    elif fault == "postgres":
        assert proxy is not None
        proxy.restore()
    ended = time.monotonic()
    recover_s = None
    while time.monotonic() - ended < 120:
        if count(direct)[0] > before:
            recover_s = time.monotonic() - ended
            break
        time.sleep(0.02)
    stop.set()
    feeder.join()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and count(direct)[0] < posted["n"]:
        time.sleep(0.2)
    stored, distinct = count(direct)
    daemon.stop()
    daemon.engine.dispose()
    box.stop()
    if mounted:
        subprocess.run(["umount", str(tmp)])
    if fault == "postgres":
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        admin.dispose()
    how = {"full": "tmpfs filled" if mounted else "max_page_count"}.get(fault, "")
    return {"fault": fault, "how": how, "outage_s": lock_seconds if fault == "lock" else outage,
            "recover_s": None if recover_s is None else round(recover_s, 2), "posted": posted["n"],
            "stored": stored, "stored_once": stored == distinct == posted["n"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fault", choices=["readonly", "full", "lock", "postgres", "all"], default="all")
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--lock-seconds", type=float, default=30.0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler", "urllib3", "slack_sdk", "tweepy"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    faults = ["readonly", "full", "lock", "postgres"] if args.fault == "all" else [args.fault]
    results = []
    for fault in faults:
        result = run(fault, outage=args.outage, lock_seconds=args.lock_seconds, every=args.poll_interval)
        print(f"{fault:9} {result['how'] or '-':15} outage {result['outage_s']:>5.1f} s  recovered in "
              f"{result['recover_s']} s  posted {result['posted']}  stored {result['stored']}  "
              f"once: {result['stored_once']}", flush=True)
        results.append(result)
    emit({"bench": "db_faults", "machine": machine(), "poll_interval_s": args.poll_interval, "results": results})


if __name__ == "__main__":
    main()
