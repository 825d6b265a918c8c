"""How the default rules.yaml's five sources spread over 2 and 3 replicas on one PostgreSQL database.

    python bench/lease_spread.py                    # 2 replicas, then 3
    python bench/lease_spread.py --replicas 3 --lease-ttl 10

Each replica is `mention-monitor run` against the loopback sandbox (all started at once, on a fresh
database, so the schema upgrade under the advisory lock is part of it).  Reported per run: which
replica holds which source once the holders stop changing, the largest share against
ceil(sources / replicas), and the seconds from the start until that split was reached.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import ROOT, emit, machine

from connectors.sandbox import Sandbox
from monitor.store import make_engine

PG_URL = os.environ.get("MM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SOURCES = 5


def holders(engine: Any) -> dict[str, str]:
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select name, holder from lease where name like 'source:%' and holder <> '' "
                                        "and expires_at > (now() at time zone 'utc')")).all()
    except sa.exc.ProgrammingError:  # no lease table yet
        return {}
    return {name.removeprefix("source:"): holder for name, holder in rows}


def run(replicas: int, *, lease_ttl: float, settle: float) -> dict[str, Any]:
    db = f"mm_bench_leases_{os.getpid()}_{replicas}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {db}"))
        conn.execute(sa.text(f"CREATE DATABASE {db}"))
    url = PG_URL.rsplit("/", 1)[0] + "/" + db
    box = Sandbox(port=0).start()
    tmp = Path(tempfile.mkdtemp(prefix="mm-leases-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "X_", "FACEBOOK_", "DATABASE_URL"))}
    env.update(MENTION_MONITOR_LEASE_TTL=str(lease_ttl), MENTION_MONITOR_SLACK_RATE="0")
    procs = []
    started = time.monotonic()
    for i in range(replicas):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--sandbox-url", box.url, "--rules", str(ROOT / "rules.yaml"),
             "--db", url], cwd=ROOT, env={**env, "MENTION_MONITOR_REPLICA_ID": f"replica-{i + 1}"},
            stdout=subprocess.DEVNULL, stderr=(tmp / f"replica-{i + 1}.log").open("wb")))
    engine = make_engine(url)
    share = -(-SOURCES // replicas)
    split: dict[str, str] = {}
    reached = None
    stable_since = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = holders(engine)
            counts = Counter(now.values())
            good = len(now) == SOURCES and max(counts.values(), default=0) <= share and len(counts) == replicas
            if now != split:
                split, stable_since = now, time.monotonic()
                if good:
                    reached = time.monotonic() - started
            elif good and stable_since is not None and time.monotonic() - stable_since >= settle:
                break
            time.sleep(0.1)
        alive = [p.poll() is None for p in procs]
    finally:
        for p in procs:
            p.terminate()
        codes = [p.wait(timeout=30) for p in procs]
        engine.dispose()
        box.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        admin.dispose()
    counts = Counter(split.values())
    return {"replicas": replicas, "share": share, "held": dict(sorted(counts.items())),
            "sources": {s: h for s, h in sorted(split.items())}, "spread_after_s": round(reached, 2) if reached else None,
            "all_came_up": all(alive), "exit_codes": codes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, action="append", help="repeat for several runs (default 2 and 3)")
    parser.add_argument("--lease-ttl", type=float, default=6.0, help="MENTION_MONITOR_LEASE_TTL (default 30 in use)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds the split must hold unchanged")
    args = parser.parse_args()
    results = []
    for n in args.replicas or [2, 3]:
        result = run(n, lease_ttl=args.lease_ttl, settle=args.settle)
        print(f"{n} replicas: held {result['held']} (share {result['share']}), spread after "
              f"{result['spread_after_s']} s, all came up: {result['all_came_up']}, exit codes {result['exit_codes']}",
              flush=True)
        results.append(result)
    emit({"bench": "lease_spread", "machine": machine(), "lease_ttl_s": args.lease_ttl, "results": results})


if __name__ == "__main__":
    main()
