"""Alembic migrations: a fresh database, one an earlier release made with create_all, and one a
newer release upgraded; `mention-monitor db current | upgrade`."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from monitor import migrations
from monitor.cli import main
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


@pytest.mark.parametrize("in_child", [False, True], ids=["here", "in-a-child"])  # the daemon's start: in a child
def test_a_database_a_newer_release_upgraded_is_refused_untouched(tmp_path, in_child):
    engine = make_engine(f"sqlite:///{tmp_path / 'mm.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(SchemaTooNew, match="0099"):
        create_schema(engine, in_child=in_child)
    assert schema_revision(engine) == "0099"
    engine.dispose()


def test_the_daemon_upgrades_a_fresh_database_in_a_child_process_that_alone_imports_alembic(db_url):
    engine = make_engine(db_url)
    create_schema(engine, in_child=True)  # what the daemon's start does (monitor.runtime.wiring.build_daemon)
    assert schema_revision(engine) == migrations.head()
    assert differences(engine) == []
    with transaction(engine) as s:
        s.add(Mention(platform="x", kind="mention", external_id="42", text="where is my parcel"))
    create_schema(engine, in_child=True)  # stamped at the head: nothing to do, no child
    with Session(engine) as s:
        assert [m.text for m in s.exec(select(Mention)).all()] == ["where is my parcel"]
    engine.dispose()


def cli(capsys, *args: str, db: str) -> tuple[int, str, str]:
    """`mention-monitor db ...` through the command line's own entry point: (exit code, stdout, stderr)."""
    code = main(["db", *args, "--db", db])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


def test_db_current_and_db_upgrade_say_where_the_database_is(tmp_path, capsys):
    db = f"sqlite:///{tmp_path / 'mm.db'}"
    assert cli(capsys, "current", db=db) == (1, f"{db}: no schema yet (head is {migrations.head()}): run "
                                                "`mention-monitor db upgrade`", "")
    assert cli(capsys, "upgrade", db=db) == (0, f"{db}: upgraded to {migrations.head()}", "")
    assert cli(capsys, "current", db=db) == (0, f"{db}: at {migrations.head()} (head, up to date)", "")
    engine = make_engine(db)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    code, _, err = cli(capsys, "upgrade", db=db)
    assert code == 1
    assert err == (
        f"the database {db} is at schema revision 0099, which this release does not know (its newest is "
        f"{migrations.head()}): a newer release of mention-monitor upgraded it. Run that release, or restore "
        "the backup taken before the upgrade.")


def test_an_0003_database_keeps_its_alerts_under_the_neutral_column_names(db_url):
    """0004 renames case.slack_channel, slack_ts, slack_rendered in place: a case's alert is still found."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        migrations.upgrade(conn, to="0003")
        conn.commit()
    with engine.begin() as conn:  # what a release at 0003 stored for a case whose alert is in Slack
        conn.exec_driver_sql(
            'INSERT INTO "case" (platform, conversation_id, author_id, author_handle, state, rule, severity, '
            "channel, group_key, sla_seconds, sla_business_hours, escalation_level, assignee, moved_to_dm, "
            "ack_mode, ack_text, dry_run, mention_count, slack_channel, slack_ts, slack_rendered) VALUES "
            "('x', 'c1', '42', 'anna', 'open', 'urgent', 'high', '#cs-alerts', '', 1800, false, 0, '', false, "
            "'off', '', false, 1, 'C0ALERTS', '1700000000.000100', '25 min')")
    assert schema_revision(engine) == "0003"
    create_schema(engine)
    assert schema_revision(engine) == migrations.head()
    columns = {c["name"] for c in sa.inspect(engine).get_columns("case")}
    assert {"alert_channel", "alert_ref", "countdown_step"} <= columns
    assert not {"slack_channel", "slack_ts", "slack_rendered"} & columns
    with Session(engine) as s:
        case = s.exec(select(Case)).one()
        assert (case.alert_channel, case.alert_ref, case.countdown_step) == ("C0ALERTS", "1700000000.000100", "25 min")
    assert differences(engine) == []
    engine.dispose()
