"""Alembic migrations: a fresh database, one an earlier release made with create_all, and one a
newer release upgraded; `mention-monitor db current | upgrade`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from monitor import migrations
from monitor.model import Case, Mention
from monitor.store import SchemaTooNew, create_schema, make_engine, schema_revision, transaction


def differences(engine: sa.engine.Engine) -> list:
    """What the database lacks or has beyond the models (alembic's autogenerate comparison)."""
    with engine.connect() as conn:
        found = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), SQLModel.metadata)
    return [d for d in found if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]


def test_a_fresh_database_migrated_to_the_head_has_exactly_the_models_tables(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    assert schema_revision(engine) == migrations.head()
    assert differences(engine) == [], "a model changed without a migration (docs/deploy.md, 'Changing the schema')"
    create_schema(engine)  # every start runs it: the second is a no-op
    assert schema_revision(engine) == migrations.head()
    engine.dispose()


def test_a_version_2_database_made_by_create_all_is_stamped_and_keeps_its_rows(db_url):
    engine = make_engine(db_url)
    migrations.baseline_metadata().create_all(engine)  # what releases before Alembic did (create_all at version 2)
    with transaction(engine) as s:
        s.exec(sa.text("insert into setting (key, value) values ('schema_version', '2')"))
        s.add(Mention(platform="x", kind="mention", external_id="41", text="my order never came"))
    assert schema_revision(engine) is None
    create_schema(engine)
    assert schema_revision(engine) == migrations.head()
    with Session(engine) as s:
        assert [m.text for m in s.exec(select(Mention)).all()] == ["my order never came"]
    assert differences(engine) == []
    engine.dispose()


def test_a_version_1_database_gains_the_backfill_column_in_place(db_url):
    engine = make_engine(db_url)
    migrations.baseline_metadata().create_all(engine)
    with engine.begin() as conn:  # what release 1 left behind: no case.backfilled_at, marker 1
        conn.exec_driver_sql('ALTER TABLE "case" DROP COLUMN backfilled_at')
        conn.exec_driver_sql("INSERT INTO setting (key, value) VALUES ('schema_version', '1')")
    create_schema(engine)
    assert "backfilled_at" in {c["name"] for c in sa.inspect(engine).get_columns("case")}
    with transaction(engine) as s:
        s.add(Case(platform="x", conversation_id="1", backfilled_at=None))
    with Session(engine) as s:
        assert s.exec(select(Case)).one().backfilled_at is None
        assert s.exec(sa.text("select value from setting where key = 'schema_version'")).scalar() == "2"
    assert schema_revision(engine) == migrations.head()
    engine.dispose()


def test_a_database_a_newer_release_upgraded_is_refused_untouched(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'mm.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(SchemaTooNew):
        create_schema(engine)
    assert schema_revision(engine) == "0099"
    engine.dispose()


def cli(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", "db", *args, "--db", db], capture_output=True,
                          text=True, timeout=120)


def test_db_current_and_db_upgrade_say_where_the_database_is(tmp_path):
    db = f"sqlite:///{tmp_path / 'mm.db'}"
    before = cli("current", db=db)
    assert (before.returncode, before.stdout.strip()) == (1, f"{db}: no schema yet (head is "
                                                             f"{migrations.head()}): run `mention-monitor db upgrade`")
    done = cli("upgrade", db=db)
    assert (done.returncode, done.stdout.strip()) == (0, f"{db}: upgraded to {migrations.head()}")
    after = cli("current", db=db)
    assert (after.returncode, after.stdout.strip()) == (0, f"{db}: at {migrations.head()} (head, up to date)")
    engine = make_engine(db)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    newer = cli("upgrade", db=db)
    assert newer.returncode == 1
    assert newer.stderr.strip() == (
        f"the database {db} is at schema revision 0099, which this release does not know (its newest is "
        f"{migrations.head()}): a newer release of mention-monitor upgraded it. Run that release, or restore "
        "the backup taken before the upgrade.")
