"""SIGKILL during a replay, then restart: every mention stored exactly once, the cursor never ahead or behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from monitor.store import make_engine

ROOT = Path(__file__).resolve().parent.parent


def write_stream(path: Path, n: int) -> None:
    lines = []
    for i in range(n):
        angry = i % 7 == 0
        lines.append(json.dumps({
            "platform": "x", "kind": "mention", "external_id": str(50_000 + i), "conversation_id": str(50_000 + i),
            "author": {"id": f"u{i % 300}", "handle": f"user{i % 300}", "followers": i},
            "text": f"@nordlysshop order {i} " + ("arrived broken, I want a refund" if angry else "looks lovely"),
            "mentions_brand": True, "created_at": "2026-11-24T09:00:00+00:00",
        }))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def counts(url: str, source: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("select count(*) from mention")).scalar_one()
            distinct = conn.execute(sa.text("select count(distinct external_id) from mention")).scalar_one()
            cursor = conn.execute(sa.text("select value from cursor where source = :s"), {"s": source}).scalar()
    except sa.exc.OperationalError:
        return 0, 0, 0
    finally:
        engine.dispose()
    return stored, distinct, int(cursor or 0)


def test_sigkill_during_replay_loses_nothing_and_stores_nothing_twice(tmp_path, simple_rules_file):
    n = 2000
    stream = tmp_path / "stream.jsonl"
    write_stream(stream, n)
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "X_", "FACEBOOK_"))}
    command = [sys.executable, "-m", "monitor", "run", "--once", "--replay", str(stream),
               "--rules", str(simple_rules_file), "--db", url]
    rng = random.Random(7)
    kills = 0
    for _ in range(60):
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # kill at a random moment after a random number of pages was stored (start-up time varies with load)
        pages_wanted = rng.randint(1, 5)
        pages = 0
        assert proc.stderr is not None
        for line in proc.stderr:
            if b"INFO monitor.runtime.daemon: poll" in line:
                pages += 1
                if pages >= pages_wanted:
                    break
        time.sleep(rng.uniform(0, 0.004))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            stored, distinct, cursor = counts(url, "replay:stream.jsonl")
            # the page and its cursor commit together: the cursor is never ahead of or behind the rows
            assert stored == distinct == cursor
        else:
            assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
            break
    else:
        raise AssertionError("the replay never finished")
    print(f"killed {kills} times")
    assert kills >= 10, "the replay finished before it could be killed; make the stream longer"
    final = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert final.returncode == 0, final.stderr.decode()[-2000:]
    assert counts(url, "replay:stream.jsonl") == (n, n, n)
