"""Memory: RSS of the daemon, all six languages on, idle after ingesting --n mentions.

    python bench/memory.py --n 10000

Starts the sandbox here and the daemon as its own process (`python -m monitor run --sandbox-url
... --db sqlite:///...`, default rules.yaml with sources polled every --poll-interval seconds and
the sandbox's rate limits lifted so 10,000 mentions arrive in minutes), posts the mentions, waits
until they are all stored and the outbox is quiet, lets the daemon idle, then reads VmRSS (and
the peak, VmHWM) from /proc/PID/status.  Target: idle RSS < 100 MB.  The last line printed is
one JSON object.

    python bench/memory.py --n 10000 --late-comments 0.05 --same-second

With late-visible comments (or --sweep) the daemon runs under libfaketime (Debian's `faketime`
package; gcc builds .ci/monotonic_sleep.c beside it): once ingest has settled, its wall clock is
moved RECONCILE_EVERY_S + 60 s ahead, so its own scheduled polls find the hourly reconciliation
sweep due, exactly as an hour later in production; the bench waits for the sweep to finish.
Idle RSS is read before the clock moves (an hour on, every unanswered alert escalates).

    python bench/memory.py --n 10000 --trace [--tracemalloc]

Where the memory goes: the daemon runs through bench/memory_probe.py, which charges VmRSS growth
to each package at its first import; when idle the bench asks it (SIGUSR1) for that table and,
with --tracemalloc (slow: use a smaller --n), the live heap allocations by source file.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import ROOT, Stream, emit, fast_rules, inject, machine, vm_status


def _count(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return -1  # not created yet, or busy: ask again


def _faketime(tmp: Path) -> tuple[dict[str, str], Path]:
    """The environment that runs the daemon under libfaketime with an offset the bench can move
    (a file re-read every second), and that file.  The monotonic clock stays real."""
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not libs:
        raise SystemExit("bench/memory.py: the reconciliation sweep needs libfaketime "
                         "(apt-get install faketime), or run with --no-sweep")
    shim = tmp / "monotonic_sleep.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(ROOT / ".ci" / "monotonic_sleep.c"),
                    "-ldl"], check=True)
    offset = tmp / "faketime-offset"
    offset.write_text("+0\n")
    return {"LD_PRELOAD": f"{shim} {libs[0]}", "FAKETIME_TIMESTAMP_FILE": str(offset),
            "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}, offset


def _swept_at(db: Path, source: str) -> float:
    """When the source's cursor says its last reconciliation sweep began, 0 while one is still
    reading (posts left pending) or none ran."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            row = conn.execute("select value from cursor where source = ?", (source,)).fetchone()
    except sqlite3.Error:
        return 0.0
    state = json.loads(row[0]) if row and row[0] else {}
    return 0.0 if state.get("pending") or state.get("sweep") else float(state.get("reconciled_at") or 0)


def _print_smaps(pid: int, top: int = 15) -> None:
    """The daemon's largest resident mappings (where the memory is: heap, thread arenas, files)."""
    rows, name, size = [], "", 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if "-" in parts[0] and len(parts) >= 5:
            name = parts[5] if len(parts) > 5 else "[anonymous]"
        elif parts[0] == "Rss:":
            size = int(parts[1])
            rows.append((size, name))
    by_name: dict[str, int] = {}
    for size, name in rows:
        by_name[name] = by_name.get(name, 0) + size
    for name, size in sorted(by_name.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{size / 1024:8.1f} MB  {name}")


def _probe(proc: subprocess.Popen[bytes], out: Path, *, top: int = 25, show: bool = True,
           first: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ask bench/memory_probe.py in the daemon for its tables; print them (the heap's beside `first`'s)."""
    out.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    for _ in range(600):
        if out.exists():
            break
        time.sleep(0.1)
    report = json.loads(out.read_text(encoding="utf-8"))
    if not show:
        return report
    imports = report["imports_kb"]
    print(f"imports: {sum(imports.values()) / 1024:.1f} MB of the daemon's RSS grew while importing; by package:")
    for package, kb in list(imports.items())[:top]:
        print(f"{kb / 1024:8.1f} MB  {package}  (first imported {report['first_import_s'][package]:.2f} s after start)")
    then = first or {}
    arenas, blocks = report["pymalloc"], report["allocated_blocks"]
    print(f"heap at the first poll: {then.get('pymalloc', {}).get('bytes in allocated blocks', 0) / 2**20:.1f} MB "
          "in live blocks")
    print(f"heap (at the first poll -> now): {then.get('allocated_blocks', 0):,} -> {blocks:,} allocated blocks; "
          f"pymalloc {then.get('pymalloc', {}).get('arenas allocated current', 0)} -> "
          f"{arenas.get('arenas allocated current', 0)} arenas of 1 MiB (highwater {arenas.get('arenas highwater mark', 0)}), "
          f"{arenas.get('bytes in allocated blocks', 0) / 2**20:.1f} MB in live blocks, "
          f"{arenas.get('bytes in available blocks', 0) / 2**20:.1f} MB free in used pools, "
          f"{arenas.get('unused pools', 0) * 16 / 1024:.1f} MB in empty pools")
    before = dict(then.get("objects_by_type", []))
    print("objects by type (gc-tracked), now and the growth since the first poll:")
    for name, count in report["objects_by_type"][:top]:
        print(f"{count:>9,} {count - before.get(name, 0):>+9,}  {name}")
    for line in report.get("run", []):
        print(f"MEMORY_PROBE_RUN: {line}")
    for line in report.get("held_by", []):
        print(f"held by: {line}")
    if "tracemalloc_by_file_kb" in report:
        print(f"tracemalloc: {report['tracemalloc_total_kb'] / 1024:.1f} MB live in Python allocations; by file:")
        for filename, kb, count in report["tracemalloc_by_file_kb"][:top]:
            print(f"{kb / 1024:8.1f} MB  {count:>8} blocks  {filename.replace(str(ROOT) + '/', '')}")
    if "tracemalloc_growth_by_file_kb" in report:
        print("tracemalloc: growth since the first poll, by file:")
        for filename, kb, count in report["tracemalloc_growth_by_file_kb"][:top]:
            print(f"{kb / 1024:+8.1f} MB  {count:>+8} blocks  {filename.replace(str(ROOT) + '/', '')}")
    return report


def run(*, n: int, poll_interval: float, idle_s: float, seed: int, timeout_s: float,
        smaps: bool = False, late_comments: float = 0.0, same_second: bool = False,
        sweep: bool = False, trace: bool = False, tracemalloc: bool = False) -> dict[str, Any]:
    from connectors.facebook import RECONCILE_EVERY_S
    from connectors.sandbox import Sandbox
    from monitor.launch import reexec_argv

    sandbox = Sandbox().start()
    sandbox.configure(x_limits={"mentions": (1_000_000, 900), "search": (1_000_000, 900),
                                "create_tweet": (1_000_000, 86_400), "dm": (1_000_000, 900)},
                      slack_burst=1_000_000, graph_calls_per_hour=1_000_000,
                      # issue #21: a share of comments visible 10 minutes after their created_time,
                      # messages landing in the second their conversation was last read
                      fb_late_comments=late_comments, fb_late_by_s=600, fb_same_second_messages=same_second)
    tmp = Path(tempfile.mkdtemp(prefix="mm-memory-"))
    rules = fast_rules(tmp / "rules.yaml", every_s=poll_interval)
    db = tmp / "memory.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "X_", "FACEBOOK_", "DATABASE_URL"))}
    env["MENTION_MONITOR_LOG_LEVEL"] = "WARNING"
    env["MENTION_MONITOR_SLACK_RATE"] = "0"  # Slack's limit is lifted in the sandbox above; our pacing too
    ahead_s = 0  # how far the daemon's wall clock runs ahead of ours
    if sweep:
        faked, offset_file = _faketime(tmp)
        env.update(faked)
    log = (tmp / "daemon.log").open("w")
    daemon_args = ["run", "--sandbox-url", sandbox.url, "--rules", str(rules), "--db", f"sqlite:///{db}"]
    probe_out = tmp / "probe.json"
    if trace or tracemalloc:
        launcher = [*(["-X", "tracemalloc"] if tracemalloc else []), str(ROOT / "bench" / "memory_probe.py"),
                    str(probe_out), "--"]
    else:
        launcher = ["-m", "monitor"]
    command = [sys.executable, *launcher, *daemon_args]
    # the probe runs the daemon in its own interpreter: it starts it as `run` would restart itself
    # (-OO unless PYTHONOPTIMIZE is set); `python -m monitor run` restarts itself
    if trace or tracemalloc:
        command = reexec_argv(daemon_args, orig_argv=command, executable=sys.executable, optimize=0,
                              environ=env) or command
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    launched = time.time()
    try:
        first_poll_s = -1.0  # process start until a source's first successful poll (models loaded first)
        while time.time() - launched < 120 and proc.poll() is None:
            if _count(db, "select count(*) from sourcehealth where last_success_at is not null") > 0:
                first_poll_s = time.time() - launched
                break
            time.sleep(0.05)
        started = vm_status(proc.pid)
        first_probe = _probe(proc, probe_out, show=False) if (trace or tracemalloc) else None  # idle's is compared with it
        stream = Stream(seed=seed, start=datetime.now(UTC), include_brand_posts=False)
        records = []
        for timed in stream.steady(n, rate_per_s=50):
            records.append(dict(timed.record))
        began = time.time()
        stored = pending = -1

        def settle(*, quiet_for: float, need_outbox_quiet: bool, above: int) -> None:
            """Wait until the stored count has moved past `above` and stops moving (and, at the end,
            the outbox is done): a daemon slow to start must not look like one that has finished."""
            nonlocal stored, pending
            last, quiet_since = -2, None
            while time.time() - began < timeout_s:
                if proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {proc.returncode}; see {tmp / 'daemon.log'}")
                time.sleep(0.5)
                stored = _count(db, "select count(*) from mention where from_brand = 0")
                pending = _count(db, "select count(*) from outbox where state in ('pending', 'sending') "
                                     f"and next_attempt_at <= datetime('now', '+{ahead_s} seconds')")
                quiet = stored == last and stored > above and (pending == 0 or not need_outbox_quiet)
                last = stored
                if not quiet:
                    quiet_since = None
                    continue
                quiet_since = quiet_since or time.time()
                if time.time() - quiet_since >= quiet_for:
                    return

        # X's mentions timeline reaches back only 800 posts: post in pages the daemon can keep up with
        for i in range(0, len(records), 500):
            # Stamped as they are posted: a comment posted now with a created_time minutes old
            # sorts before the comments already read, which Graph's `after` cursor never revisits.
            stamp = datetime.now(UTC)
            inject(sandbox, [{**r, "created_at": (stamp + timedelta(milliseconds=k)).isoformat()}
                             for k, r in enumerate(records[i:i + 500])])
            settle(quiet_for=max(4.0, 3 * poll_interval), need_outbox_quiet=False, above=max(stored, 0))
        settle(quiet_for=3, need_outbox_quiet=True, above=-1)
        ingest_s = time.time() - began
        if ingest_s >= timeout_s:
            print(f"ingest did not settle within --timeout {timeout_s:.0f} s: the counts below are not final",
                  file=sys.stderr)
        stored_by_polls = stored
        # idle RSS is read before the sweep, so it stays comparable with runs without one: an hour
        # later every unanswered alert escalates, and that backlog is not what this measures
        time.sleep(idle_s)
        idle = vm_status(proc.pid)
        if smaps:
            _print_smaps(proc.pid)
        probe = _probe(proc, probe_out, first=first_probe) if (trace or tracemalloc) else None
        sweep_s = -1.0
        if sweep:
            # An hour passes for the daemon: its scheduled polls find the sweep due, as in production.
            ahead_s = RECONCILE_EVERY_S + 60
            offset_file.write_text(f"+{ahead_s}\n")
            jumped = time.time()
            while _swept_at(db, "fb-comments") < jumped + ahead_s - 5 or \
                    _swept_at(db, "fb-messages") < jumped + ahead_s - 5:
                if proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited with {proc.returncode}; see {tmp / 'daemon.log'}")
                if time.time() - jumped > timeout_s:
                    raise RuntimeError("the reconciliation sweep did not finish")
                time.sleep(0.5)
            sweep_s = time.time() - jumped
            settle(quiet_for=3, need_outbox_quiet=False, above=-1)
        stored = _count(db, "select count(*) from mention where from_brand = 0")  # now, whatever settle saw
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        sandbox.stop()
        log.close()
    expected = Counter(f"{r['platform']}_{r['kind']}" for r in records)
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            got = Counter({f"{p}_{k}": c for p, k, c in conn.execute(
                "select platform, kind, count(*) from mention where from_brand = 0 group by 1, 2")})
    except sqlite3.Error:
        got = Counter()
    lost_by_kind = {k: expected[k] - got[k] for k in sorted(expected) if expected[k] != got[k]}
    return {"rss_idle_mb": round(idle["VmRSS"] / 1024, 1), "rss_peak_mb": round(idle["VmHWM"] / 1024, 1),
            "rss_anon_mb": round(idle.get("RssAnon", 0) / 1024, 1), "rss_file_mb": round(idle.get("RssFile", 0) / 1024, 1),
            "rss_start_mb": round(started["VmRSS"] / 1024, 1), "first_poll_s": round(first_poll_s, 2), "n": n, "stored": stored,
            "outbox_due": pending, "ingest_s": round(ingest_s, 1), "idle_s": idle_s,
            "poll_interval_s": poll_interval, "late_comments": late_comments, "same_second_messages": same_second,
            "stored_by_polls": stored_by_polls, "sweep": sweep, "sweep_s": round(sweep_s, 1), "lost": n - stored,
            "lost_by_kind": lost_by_kind, "traced": bool(probe), "tracemalloc": tracemalloc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="mentions to ingest first (default 10000)")
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before reading RSS")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for ingest after this")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--late-comments", type=float, default=0.0,
                        help="share of Facebook comments visible 10 min after their created_time (e.g. 0.05)")
    parser.add_argument("--same-second", action="store_true",
                        help="Messenger messages land in the second their conversation was last read")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="after ingest, move the daemon's clock an hour on so its hourly reconciliation sweep "
                             "runs (needs libfaketime; default: on with --late-comments or --same-second)")
    parser.add_argument("--smaps", action="store_true", help="print the daemon's largest mappings when idle")
    parser.add_argument("--trace", action="store_true",
                        help="run the daemon through bench/memory_probe.py and print the RSS each package's import added")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="with --trace: also trace Python allocations and print them by file when idle (slow)")
    args = parser.parse_args()
    sweep = args.sweep if args.sweep is not None else bool(args.late_comments or args.same_second)
    result = run(n=args.n, poll_interval=args.poll_interval, idle_s=args.idle, seed=args.seed,
                 timeout_s=args.timeout, smaps=args.smaps, late_comments=args.late_comments,
                 same_second=args.same_second, sweep=sweep, trace=args.trace, tracemalloc=args.tracemalloc)
    if sweep:
        print(f"{result['stored_by_polls']} of {result['n']} stored by polling, {result['stored']} after the "
              f"reconciliation sweep ({result['sweep_s']} s after the daemon's clock moved an hour on); "
              f"lost {result['lost']} {result['lost_by_kind']}")
    print(f"{result['stored']} of {result['n']} mentions stored in {result['ingest_s']} s; "
          f"idle RSS {result['rss_idle_mb']} MB (peak {result['rss_peak_mb']} MB, target < 100 MB): "
          f"{result['rss_anon_mb']} MB heap and stacks, {result['rss_file_mb']} MB mapped files; "
          f"first poll {result['first_poll_s']} s after start")
    emit({**result, "machine": machine()})


if __name__ == "__main__":
    main()
