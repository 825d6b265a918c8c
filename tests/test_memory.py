"""What keeps an idle daemon small (issue #18): heavy libraries stay out of its process.

Each check runs a fresh interpreter, so what the rest of the test session imported does not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIX = ("en", "da", "hr", "ro", "id", "zh")

_TRIAGE_SIX = """
import json, sys
from monitor.runtime.memory import trim_memory
from monitor.triage import triage, warm_up
warm_up()
posts = {"en": "my order never arrived and nobody answers", "da": "min pakke er stadig ikke kommet efter tre uger",
         "hr": "narudžba nije stigla, nitko ne odgovara", "ro": "comanda nu a ajuns si nimeni nu raspunde",
         "id": "pesanan saya belum sampai dan tidak ada yang membalas", "zh": "非常不好，快递三个星期还没到"}
scores = {lang: triage(text, languages=("en", "da", "hr", "ro", "id", "zh")) for lang, text in posts.items()}
trim_memory()
print(json.dumps({"langs": {k: s.lang for k, s in scores.items()}, "zh_sentiment": scores["zh"].sentiment,
                  "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"numpy", "jieba", "py3langid",
                                                                              "pkg_resources", "matplotlib"})}))
"""


def _run(code: str, *, cache: Path, args: tuple[str, ...] = ()) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MENTION_MONITOR_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_triage_in_six_languages_loads_neither_numpy_nor_jieba(tmp_path: Path) -> None:
    # the first start builds the caches (in child processes), the second reads them
    for _ in range(2):
        out = _run(_TRIAGE_SIX, cache=tmp_path)
        assert out["langs"] == {lang: lang for lang in SIX}
        assert out["zh_sentiment"] < -0.05  # 非常不好: 非常 is "very", 不好 "not good"
        assert out["loaded"] == []
    built = sorted(p.name for p in (tmp_path / "mention-monitor").iterdir())
    assert [name.split("-")[0] for name in built] == ["complaint", "jieba", "py3langid"]


def test_a_broken_language_model_cache_is_rebuilt(tmp_path: Path) -> None:
    from monitor.triage.langid_model import cache_dir

    broken = tmp_path / "mention-monitor" / cache_dir().name
    broken.mkdir(parents=True)
    (broken / "meta.json").write_text("{not json", encoding="utf-8")
    (broken / "nextmove.u32").write_bytes(b"\0" * 10)
    out = _run(_TRIAGE_SIX, cache=tmp_path)
    assert out["langs"] == {lang: lang for lang in SIX}
    assert json.loads((broken / "meta.json").read_text(encoding="utf-8"))["format"] >= 2


_START_AT_HEAD = """
import json, sys
from monitor.store import create_schema, make_engine, schema_revision
engine = make_engine("sqlite:///" + sys.argv[1])
create_schema(engine)
print(json.dumps({"revision": schema_revision(engine) if sys.argv[2] == "first" else None,
                  "alembic": "alembic" in sys.modules}))
"""


def test_a_start_on_a_database_at_the_head_revision_does_not_load_alembic(tmp_path: Path) -> None:
    from monitor import migrations

    db = str(tmp_path / "at-head.db")
    first = _run(_START_AT_HEAD, cache=tmp_path, args=(db, "first"))
    assert first == {"revision": migrations.head(), "alembic": True}  # a new database: Alembic creates it
    again = _run(_START_AT_HEAD, cache=tmp_path, args=(db, "again"))
    assert again == {"revision": None, "alembic": False}


_DAEMON_START = """
import json, sys
from datetime import date
from monitor.rules import load_rules
import sqlalchemy as sa
from monitor.store import create_schema, make_engine
engine = make_engine("sqlite:///" + sys.argv[1])
create_schema(engine, in_child=True)  # as the daemon's start (monitor.runtime.wiring.build_daemon)
hours = load_rules("rules.yaml").business_hours  # public_holidays: [DK]
with engine.connect() as conn:  # read without Alembic (schema_revision asks it)
    revision = conn.execute(sa.text("select version_num from alembic_version")).scalar()
print(json.dumps({"revision": revision, "christmas_closed": hours.is_holiday(date(2026, 12, 25)),
                  "a_tuesday_closed": hours.is_holiday(date(2026, 12, 1)),
                  "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"alembic", "mako", "pygments", "holidays"})}))
"""


def test_the_daemon_creates_its_database_and_knows_the_holidays_without_alembic_or_python_holidays(
        tmp_path: Path) -> None:
    from monitor import migrations

    out = _run(_DAEMON_START, cache=tmp_path, args=(str(tmp_path / "fresh.db"),))
    assert out == {"revision": migrations.head(), "christmas_closed": True, "a_tuesday_closed": False, "loaded": []}


def test_going_idle_empties_the_triage_caches_and_the_next_posts_score_the_same() -> None:
    from monitor.runtime.memory import IdleTrim
    from monitor.triage import complaint, triage

    texts = ("my order never arrived and nobody answers", "pesanan saya belum sampai", "非常不好，快递三个星期还没到")
    before = [triage(text, languages=SIX) for text in texts]
    model = complaint.load_model()
    assert model.ngrams is not None and model.ngrams._word_cache
    emptied: list[str] = []
    idle = IdleTrim(on_idle=lambda: emptied.append("statements"))
    idle.worked("poll:x")
    idle.worked("outbox")
    idle.nothing_to_do("poll:x")
    assert emptied == [] and model.ngrams._word_cache  # the outbox is still delivering
    idle.nothing_to_do("outbox")
    assert emptied == ["statements"] and not model.ngrams._word_cache
    idle.nothing_to_do("outbox")  # still idle: nothing more to let go
    assert emptied == ["statements"]
    assert [triage(text, languages=SIX) for text in texts] == before


def test_idle_connections_closed_on_an_sqlite_file_come_back_with_wal_and_the_rows(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from monitor.store import create_schema, make_engine, release_idle_connections

    engine = make_engine(f"sqlite:///{tmp_path / 'idle.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("insert into setting (key, value) values ('k', 'v')"))
    release_idle_connections(engine)  # what the daemon does when it goes idle
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.execute(sa.text("select value from setting where key = 'k'")).scalar() == "v"
    memory = make_engine("sqlite://")  # an in-memory database would be lost with its connection: kept
    with memory.begin() as conn:
        conn.exec_driver_sql("create table t (x)")
        conn.exec_driver_sql("insert into t values (1)")
    release_idle_connections(memory)
    with memory.connect() as conn:
        assert conn.exec_driver_sql("select x from t").scalar() == 1
    engine.dispose()


def test_a_daemon_goes_idle_while_a_source_that_worked_is_held_back(engine, simple_rules, simple_rules_file) -> None:
    """A source paced to its quota (X's own posts: 10 reads in 15 minutes) is skipped for minutes after a
    burst: its skipped polls count as nothing to do, so the burst's caches go at once, not at its next read."""
    import io

    from connectors.console import ConsoleNotifier
    from connectors.replay import ReplaySource
    from monitor.model import SourceHealth
    from monitor.runtime.daemon import Daemon
    from monitor.runtime.poller import SourceBinding
    from monitor.store import transaction
    from monitor.triage import complaint

    replay = ReplaySource(path=ROOT / "examples" / "mentions.jsonl")
    binding = SourceBinding(name="own", platform="replay", kind="mention", query="", every=timedelta(seconds=1),
                            connector=replay)
    daemon = Daemon(engine=engine, rules_path=simple_rules_file, ruleset=simple_rules, sources={"own": binding},
                    notifier=ConsoleNotifier(stream=io.StringIO()))
    first = daemon.poll("own")
    assert first.status == "ok" and first.results[0].stored > 0
    model = complaint.load_model()
    assert model.ngrams is not None and model.ngrams._word_cache  # the burst's words
    with transaction(engine) as s:  # what pacing to the quota's reset writes (poller._paced)
        health = s.get(SourceHealth, "own")
        assert health is not None
        health.retry_at = daemon.clock.now() + timedelta(minutes=15)
        s.add(health)
    assert daemon.poll("own").status == "skipped"
    assert not model.ngrams._word_cache


_TRIM_MAPPED = """
import json, os
from monitor.runtime.memory import trim_memory
from monitor.triage import triage, warm_up
posts = ["非常不好，快递三个星期还没到", "my order never arrived and nobody answers", "pesanan saya belum sampai"]
six = ("en", "da", "hr", "ro", "id", "zh")

def resident():
    # kB resident in mappings of files under the cache, by file name (/proc/self/smaps)
    root, out, name = os.path.realpath(os.environ["MENTION_MONITOR_CACHE"]), {}, None
    for line in open("/proc/self/smaps", encoding="utf-8"):
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 and fields[5].startswith(root) else None
        elif name and fields[0] == "Rss:":
            out[os.path.basename(name)] = out.get(os.path.basename(name), 0) + int(fields[1])
    return out

warm_up()
before = [triage(text, languages=six) for text in posts]
busy = resident()
trim_memory()
idle = resident()
after = [triage(text, languages=six) for text in posts]
print(json.dumps({"busy": busy, "idle": idle, "same": [(b.lang, b.sentiment, b.complaint) for b in before]
                  == [(a.lang, a.sentiment, a.complaint) for a in after]}))
"""


def test_an_idle_trim_hands_back_every_mapped_model_page_and_triage_reads_them_again(tmp_path: Path) -> None:
    _run(_TRIAGE_SIX, cache=tmp_path)  # builds the caches
    out = _run(_TRIM_MAPPED, cache=tmp_path)
    # the Chinese word list and the complaint model's feature names are marisa tries that marisa maps itself
    assert out["busy"].get("words.marisa", 0) > 0 and out["busy"].get("ngrams.marisa", 0) > 0, out["busy"]
    assert {name: kb for name, kb in out["idle"].items() if kb} == {}
    assert out["same"] is True
