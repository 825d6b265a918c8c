"""Database engine, schema, and the small atomic helpers: cursors, leases, settings.

SQLite (WAL) in a file is the default; DATABASE_URL=postgresql://... selects
PostgreSQL through psycopg 3, where replicas coordinate through leases and
`FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from monitor import model  # noqa: F401  (registers the tables)
from monitor.model import Cursor, Lease, Setting

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///mention-monitor.db"
SCHEMA_VERSION = "1"


def normalise_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    url = normalise_url(url or DEFAULT_DATABASE_URL)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # SQLite's driver opens transactions lazily; BEGIN IMMEDIATE takes the write
        # lock up front so two threads never deadlock upgrading a read lock.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    else:
        engine = sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


# Indexes for queries that ran once per new case and scanned whole tables, so ingest slowed down
# as the database grew (bench/throughput.py): the acknowledgement cooldown looks for recent replies
# (monitor/cases/acknowledge.py), storm control counts recent cases of a group (monitor/cases/pipeline.py).
_EXTRA_INDEXES = (
    sa.Index("ix_outbox_reply_window", model.Outbox.__table__.c.kind, model.Outbox.__table__.c.platform,
             model.Outbox.__table__.c.created_at),
    sa.Index("ix_case_group_window", model.Case.__table__.c.group_key, model.Case.__table__.c.opened_at),
)


def create_schema(engine: Engine) -> None:
    """Create missing tables and stamp the schema version.

    One schema version exists so far; when the next one ships, this is where the
    migration step goes (see the README, "Upgrading")."""
    SQLModel.metadata.create_all(engine)
    for index in _EXTRA_INDEXES:  # create_all adds indexes only to tables it creates
        index.create(engine, checkfirst=True)
    with Session(engine) as session:
        current = session.get(Setting, "schema_version")
        if current is None:
            session.add(Setting(key="schema_version", value=SCHEMA_VERSION))
            session.commit()
        elif current.value != SCHEMA_VERSION:
            raise RuntimeError(
                f"database schema version {current.value} is not the one this release uses "
                f"({SCHEMA_VERSION})"
            )


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together or not at all."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def reserve_ids(session: Session, table: sa.Table, n: int) -> list[int]:
    """`n` primary keys for rows this transaction will insert, so that their ORM objects can be
    flushed together at the end instead of one flush per row to learn each id.  PostgreSQL: from
    the column's sequence (concurrent replicas get distinct values; unused ones leave gaps).
    SQLite: after the largest id, safe because every transaction holds the write lock from its
    BEGIN IMMEDIATE and rows are never deleted."""
    if n <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        sequence = session.execute(sa.text("select pg_get_serial_sequence(:t, 'id')"),
                                   {"t": f'"{table.name}"'}).scalar_one()
        rows = session.execute(sa.text("select nextval(:s) from generate_series(1, :n)"), {"s": sequence, "n": n})
        return [int(r[0]) for r in rows]
    top = session.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
    return list(range(int(top) + 1, int(top) + 1 + n))


# --------------------------------------------------------------------------- cursors


def get_cursor(session: Session, source: str) -> str:
    row = session.get(Cursor, source)
    return row.value if row else ""


def set_cursor(session: Session, source: str, value: str, *, now: datetime) -> None:
    row = session.get(Cursor, source)
    if row is None:
        session.add(Cursor(source=source, value=value, updated_at=now))
    else:
        row.value = value
        row.updated_at = now
        session.add(row)


# --------------------------------------------------------------------------- leases


def acquire_lease(engine: Engine, *, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    """Take or renew the lease `name` for `holder`; True if holder has it now.

    One atomic UPDATE decides: it succeeds only if the lease is ours already or has
    expired, so two replicas can never both believe they hold it."""
    expires = now + ttl
    table = Lease.__table__
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(table)
            .where(table.c.name == name)
            .where(sa.or_(table.c.holder == holder, table.c.expires_at < now, table.c.expires_at.is_(None)))
            .values(holder=holder, expires_at=expires)
        )
        if result.rowcount == 1:
            return True
        exists = conn.execute(sa.select(table.c.name).where(table.c.name == name)).first()
        if exists:
            return False
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(table).values(name=name, holder=holder, expires_at=expires))
        return True
    except sa.exc.IntegrityError:
        return False  # another replica inserted it first


def release_lease(engine: Engine, *, name: str, holder: str) -> None:
    table = Lease.__table__
    with engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.name == name, table.c.holder == holder)
            .values(holder="", expires_at=None)
        )


def lease_holder(engine: Engine, *, name: str) -> tuple[str, datetime | None]:
    with Session(engine) as session:
        row = session.get(Lease, name)
        return (row.holder, row.expires_at) if row else ("", None)


# --------------------------------------------------------------------------- settings


def get_setting(session: Session, key: str, default: str = "") -> str:
    row = session.exec(select(Setting).where(Setting.key == key)).first()
    return row.value if row else default


def set_setting(session: Session, key: str, value: str) -> None:
    row = session.get(Setting, key)
    if row is None:
        session.add(Setting(key=key, value=value))
    else:
        row.value = value
        session.add(row)
