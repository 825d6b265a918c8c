"""Database engine, schema, and the small atomic helpers: cursors, leases, settings.

SQLite (WAL) in a file is the default; DATABASE_URL=postgresql://... selects
PostgreSQL through psycopg 3, where replicas coordinate through leases and
`FOR UPDATE SKIP LOCKED`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor import model  # noqa: F401  (registers the tables)
from monitor.model import Cursor, Lease, Setting

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite:///mention-monitor.db"
# The `schema_version` marker releases before Alembic wrote and checked; the baseline revision
# (monitor/migrations/versions/0002_baseline.py) keeps it at 2.  The schema itself is the Alembic head.
SCHEMA_VERSION = "2"


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
        event.listen(engine, "handle_error", _sqlite_stale_connection)
        # SQLite's driver opens transactions lazily; BEGIN IMMEDIATE takes the write
        # lock up front so two threads never deadlock upgrading a read lock.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    else:
        engine = sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=5)
    return engine


def make_readonly_engine(url: str | None = None) -> Engine:
    """An engine that cannot write: `backtest` and `explain --id` only read history.

    SQLite opens the file with mode=ro (a missing file is an error, not a new database);
    PostgreSQL sessions start with default_transaction_read_only."""
    url = normalise_url(url or DEFAULT_DATABASE_URL)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database or ""
        return sa.create_engine(f"sqlite:///file:{quote(path)}?mode=ro&uri=true", connect_args={"uri": True})
    return sa.create_engine(url, pool_pre_ping=True, connect_args={"options": "-c default_transaction_read_only=on"})


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see make_engine)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# SQLite errors after which a pooled connection stays broken though the cause has gone: a connection
# that opened the file read-only stays read-only after the file (or its mount) is writable again, and
# one that met an I/O error may have lost its file handle.  Treated as a disconnect, so SQLAlchemy
# drops the pool and the next transaction opens a fresh connection (a full disk or a lock needs no
# such thing: SQLite rolls back and the same connection writes once there is room or the lock is free).
_STALE_SQLITE_ERRORS = ("attempt to write a readonly database", "disk i/o error", "unable to open database file")


def _sqlite_stale_connection(context: sa.engine.ExceptionContext) -> None:
    text = str(context.original_exception).lower()
    if any(phrase in text for phrase in _STALE_SQLITE_ERRORS):
        context.is_disconnect = True


def release_idle_connections(engine: Engine) -> None:
    """Close the pooled connections to an SQLite file that nobody is using: each keeps its page cache
    and prepared statements (~10 MB in all after a burst; bench/memory.py).  A connection in use is
    closed when it is handed back; the next transaction opens a new one (with the same PRAGMAs)."""
    if engine.dialect.name == "sqlite" and not _in_memory(engine):
        engine.dispose()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


# Indexes for queries that ran once per new case and scanned whole tables, so ingest slowed down
# as the database grew (bench/throughput.py): the acknowledgement cooldown looks for recent replies
# (monitor/cases/acknowledge.py), storm control counts recent cases of a group and of a channel, once a page
# (monitor/cases/pipeline.py; the channel's since revision 0005).
_EXTRA_INDEXES = (
    sa.Index("ix_outbox_reply_window", model.Outbox.__table__.c.kind, model.Outbox.__table__.c.platform,
             model.Outbox.__table__.c.created_at),
    sa.Index("ix_case_group_window", model.Case.__table__.c.group_key, model.Case.__table__.c.opened_at),
    sa.Index("ix_case_channel_window", model.Case.__table__.c.channel, model.Case.__table__.c.opened_at),
)


SCHEMA_LOCK_KEY = 0x6D6D_5343  # "mmSC": the PostgreSQL advisory lock replicas take to upgrade the schema


class SchemaTooNew(Exception):
    """The database is stamped with a revision this release does not have (a newer release upgraded it)."""


def create_schema(engine: Engine, *, in_child: bool = False) -> None:
    """Bring the database to this release's schema with the Alembic migrations (monitor/migrations).

    A fresh database gets every table; one an earlier release made with create_all is brought to the
    baseline in place, then to the head.  On PostgreSQL this runs under an advisory lock, so replicas
    started together wait for each other instead of racing in CREATE TABLE (UniqueViolation on pg_type).
    `in_child`: upgrade in a short-lived child process (the daemon's start), so a long-running process
    never imports Alembic, Mako and Pygments (~8 MB it would keep; bench/memory.py); an in-memory
    SQLite database, which a child cannot see, is upgraded here."""
    with engine.connect() as conn:
        if _stamped_at_head(conn):  # the usual start: nothing to upgrade, and Alembic is never imported
            return
    if in_child and not _in_memory(engine):
        _upgrade_in_child(engine)
        return
    from monitor import migrations

    with engine.connect() as conn:
        if is_postgres(engine):
            conn.execute(sa.text("select pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            conn.commit()
        try:
            found = migrations.current(conn)
            conn.commit()
            if found is not None and not migrations.known(found):
                raise SchemaTooNew(found)
            migrations.upgrade(conn)
            conn.commit()
        finally:
            if is_postgres(engine):
                conn.rollback()
                conn.execute(sa.text("select pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
                conn.commit()


MIGRATE_URL_ENV = "MENTION_MONITOR_MIGRATE_URL"  # the child's database (not in argv: it may hold a password)
SCHEMA_TOO_NEW_EXIT = 3  # the child's exit status for SchemaTooNew; the revision found is its stdout


def _in_memory(engine: Engine) -> bool:
    database = engine.url.database or ""
    return engine.dialect.name == "sqlite" and (database in ("", ":memory:") or "mode=memory" in str(engine.url))


def _upgrade_in_child(engine: Engine) -> None:
    """`create_schema` in `python -m monitor.migrations`, raising what it would have raised here."""
    import subprocess
    import sys

    from monitor import messages as msg
    from monitor.process import child_env

    env = {**child_env(), MIGRATE_URL_ENV: engine.url.render_as_string(hide_password=False)}
    done = subprocess.run([sys.executable, "-m", "monitor.migrations"], env=env, capture_output=True, text=True)
    if done.returncode == SCHEMA_TOO_NEW_EXIT:
        raise SchemaTooNew(done.stdout.strip())
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(msg.DB_UPGRADE_CHILD_FAILED.format(status=done.returncode, error=lines[-1] if lines else ""))


_REVISION = re.compile(r"""^revision\s*(?::[^=\n]*)?=\s*["']([^"']+)["']""", re.M)
_DOWN_REVISION = re.compile(r"""^down_revision\s*(?::[^=\n]*)?=\s*(?:["']([^"']+)["']|None)\s*$""", re.M)


def _head_revision() -> str | None:
    """This release's head revision read from the migration files, without Alembic (~10 MB
    imported); None if the files say anything less plain than one chain of revisions."""
    revisions, parents = set(), set()
    for path in (Path(__file__).parent / "migrations" / "versions").glob("[0-9]*.py"):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(text), _DOWN_REVISION.search(text)
        if revision is None or down is None:
            return None
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _stamped_at_head(conn: sa.Connection) -> bool:
    """True if the database is stamped with this release's head; any doubt says False (Alembic decides)."""
    head = _head_revision()
    try:
        if head is None or not sa.inspect(conn).has_table("alembic_version"):
            return False
        stamped = conn.execute(sa.text("select version_num from alembic_version")).scalars().all()
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        conn.rollback()
    return stamped == [head]


def schema_revision(engine: Engine) -> str | None:
    """The migration revision the database is at (None: not created, or made before migrations)."""
    from monitor import migrations

    with engine.connect() as conn:
        return migrations.current(conn)


class DatabaseUnusable(Exception):
    """The database can be read but not written (read-only file or mount, full disk, no privilege)."""


def check_writable(engine: Engine) -> None:
    """One harmless write, so that a daemon on a database it cannot write to fails at start
    instead of running on while every mention it fetches is refused."""
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("update setting set value = value where key = 'schema_version'"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnusable(str(exc.orig).splitlines()[0] if exc.orig else str(exc)) from exc


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
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        sequence = _SEQUENCES.get((str(bind.url), table.name))
        if sequence is None:  # looked up once a database and table: a page's round trip saved
            sequence = _SEQUENCES[(str(bind.url), table.name)] = session.execute(
                sa.text("select pg_get_serial_sequence(:t, 'id')"), {"t": f'"{table.name}"'}).scalar_one()
        # one row holding the ids as an array: a row each cost more to read than to draw
        drawn = session.execute(_NEXTVALS, {"s": sequence, "n": n}).scalar_one()
        return [int(value) for value in drawn]
    statement = _LARGEST_ID.get(table.name)
    if statement is None:  # built once a table: building it and its cache key cost more than running it
        statement = _LARGEST_ID[table.name] = sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()  # what session.execute would do first: pending ORM rows count in max(id)
    top = select_rows(session, statement, {})[0][0]  # (a cached SQL text: no statement to build or render)
    return list(range(int(top) + 1, int(top) + 1 + n))


_LARGEST_ID: dict[str, sa.Select[Any]] = {}
_NEXTVALS = sa.text("select array(select nextval(:s) from generate_series(1, :n))")
_SEQUENCES: dict[tuple[str, str], str] = {}  # (database URL, table) -> the sequence of its id column


ColumnConverter = Callable[[list[Any]], list[Any]]
# (statement, dialect, the rows' keys) -> its SQL, whether the driver takes tuples (else dicts), the driver's
# parameter names, and per parameter: the row's key (None: the statement's own value), that value, and what
# turns a page's column of values into what the column type's bind processor would give (None: as they are)
_PREPARED: dict[tuple[Any, str, tuple[str, ...]],
                tuple[str, bool, list[str], list[tuple[str | None, Any, ColumnConverter | None]],
                      tuple[str, set[int], list[int]] | None]] = {}


def execute_many(session: Session, statement: sa.Executable, rows: Sequence[Mapping[str, Any]]) -> int:
    """Run a DML `statement` once for each row (all with the same keys) in one DBAPI executemany; the number
    of rows the database says it changed.  Each value goes through its column type's bind processor as with
    `session.execute(statement, rows)`, so what is stored is the same; what is skipped is SQLAlchemy's
    per-row parameter assembly (most of the Python time of a page's inserts) and the session's autoflush:
    the caller writes rows it built itself, which no pending ORM change can affect.  Values are converted a
    column at a time, so a column its type leaves alone (text, numbers; booleans, times all None) costs no
    Python call per row."""
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    keys = tuple(rows[0])
    prepared = _PREPARED.get((statement, dialect.name, keys))
    if prepared is None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.bind_names.values())
        escaped = compiled.escaped_bind_names or {}
        fixed = {name: compiled.binds[name].effective_value for name in names}
        # the Python-side defaults of the columns the rows leave out (SQLAlchemy computes them per execution)
        for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if default is None or not default.is_scalar:
                raise ValueError(f"execute_many: give {column.key} in every row (its default is not a constant)")
            fixed[column.key] = default.arg
        plan = []
        for name in names:
            process = compiled._bind_processors.get(name)
            convert = None if process is None else _column_converter(compiled.binds[name].type, dialect, process)
            plan.append((name if name in keys else None, fixed[name], convert))
        arrays = None
        if dialect.name == "postgresql" and not escaped:
            arrays = _dml_as_arrays(statement, compiled, [key for key, _, _ in plan], dialect)
        prepared = _PREPARED[(statement, dialect.name, keys)] = (
            compiled.string, compiled.positional, [escaped.get(name, name) for name in names], plan, arrays)
    sql, positional, driver_names, plan, arrays = prepared
    columns: list[Any] = []
    for key, value, convert in plan:
        column = list(map(itemgetter(key), rows)) if key is not None else [value] * len(rows)
        columns.append(column if convert is None else convert(column))
    if arrays is not None and len(rows) > 1:
        array_sql, scalars, unique = arrays
        if not unique or len(set(zip(*(columns[i] for i in unique), strict=True))) == len(rows):
            params = {name: column[0] if i in scalars else column
                      for i, (name, column) in enumerate(zip(driver_names, columns, strict=True))}
            return connection.exec_driver_sql(array_sql, params).rowcount
    converted: list[Any] = list(zip(*columns, strict=True))
    if not positional:
        converted = [dict(zip(driver_names, values, strict=True)) for values in converted]
    return connection.exec_driver_sql(sql, converted).rowcount


_PLACEHOLDER = r"%\((\w+)\)s(?:::[A-Z ]+(?:\(\d+\))?)?"  # a psycopg parameter, as SQLAlchemy renders it, with its cast
_VALUES = re.compile(rf"{_PLACEHOLDER}(?:, |$)")
_VALUES_CLAUSE = re.compile(rf"((?:{_PLACEHOLDER}(?:, )?)+)\)")
_SET_ITEM = re.compile(rf"([^=, ]+)={_PLACEHOLDER}(?:, |$)")
_UPDATE_BY_ID = re.compile(rf"UPDATE (\S+) SET (.+) WHERE (\S+)\.id = {_PLACEHOLDER}", re.DOTALL)


def _dml_as_arrays(statement: Any, compiled: Any, keys: list[str | None],
                   dialect: sa.Dialect) -> tuple[str, set[int], list[int]] | None:
    """For PostgreSQL: `execute_many`'s statement as one statement over arrays, one per column, so that a page's
    rows are one execution instead of one each (psycopg adapts and sends every row of an executemany on its
    own: ~40 of the ingest's ~190 CPU µs a mention on PostgreSQL, bench/throughput.py).  An INSERT's VALUES become `SELECT ...
    FROM unnest(...) WITH ORDINALITY ORDER BY` the rows' order (ids are drawn in the same order); `UPDATE ...
    WHERE id = :x` becomes `UPDATE ... FROM unnest(...) WHERE id = v.x`.  Returns the SQL, the indexes of
    the parameters the statement fixes (passed once) and those whose values must differ from row to row
    (an upsert's conflict target, the id of an UPDATE: PostgreSQL refuses to change a row twice in one
    statement, where an executemany changes it again; `execute_many` runs such a page as an executemany).
    None when the statement is not of these shapes."""
    from sqlalchemy.dialects.postgresql.dml import OnConflictDoUpdate  # PostgreSQL only (`insert_for`)

    sql = compiled.string
    names = list(compiled.bind_names.values())
    position = {name: i for i, name in enumerate(names)}
    casts = {name: compiled.binds[name].type.compile(dialect=dialect) for name in names}
    if isinstance(statement, sa.Insert):
        head, found, rest = sql.partition(" VALUES (")
        values = _VALUES_CLAUSE.match(rest)
        if not found or values is None:
            return None
        listed = [m.group(1) for m in _VALUES.finditer(values.group(1))]
        if any(k for n, k in zip(names, keys, strict=True) if n not in listed):  # ON CONFLICT's must be fixed
            return None
        tail = rest[values.end():].split(" RETURNING ")[0]  # executemany's rows are not read back
        columns = [c.strip().strip('"') for c in head[head.index("(") + 1:head.rindex(")")].split(",")]
        unique: list[int] = []
        conflict = getattr(statement, "_post_values_clause", None)
        if isinstance(conflict, OnConflictDoUpdate):
            target = [getattr(c, "key", c) for c in conflict.inferred_target_elements or ()]
            if not target or not set(target) <= set(columns):
                return None
            unique = [position[listed[columns.index(c)]] for c in target]
        arrays = ", ".join(f"%({n})b::{casts[n]}[]" for n in listed)  # binary: no text escaping
        picked = ", ".join(f'v."{n}"' for n in listed)
        aliases = ", ".join(f'"{n}"' for n in listed)
        array_sql = (f"{head} SELECT {picked} FROM unnest({arrays}) WITH ORDINALITY AS v({aliases}, mm_row) "
                     f"ORDER BY v.mm_row{tail}")
        return array_sql, {position[n] for n in names if n not in listed}, unique
    whole = _UPDATE_BY_ID.fullmatch(sql) if isinstance(statement, sa.Update) else None
    if whole is None:
        return None
    table, assignments, by, key = whole.groups()
    items = [m.groups() for m in _SET_ITEM.finditer(assignments)]
    if "".join(m.group(0) for m in _SET_ITEM.finditer(assignments)) != assignments or by != table \
            or len(items) + 1 != len(names) or not all(keys):
        return None
    listed = [n for _, n in items] + [key]
    arrays = ", ".join(f"%({n})b::{casts[n]}[]" for n in listed)  # binary: no text escaping
    aliases = ", ".join(f'"{n}"' for n in listed)
    sets = ", ".join(f'{column}=v."{n}"' for column, n in items)
    array_sql = f'UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({aliases}) WHERE {table}.id = v."{key}"'
    return array_sql, set(), [position[key]]


def padded_length(n: int) -> int:
    """The length an IN list of `n` values is padded to (`select_rows`): the next power of two."""
    return 1 << (n - 1).bit_length() if n > 1 else n


# (statement, dialect) -> its compiled form, its IN lists' names and every parameter's value in the statement
# (None if `select_rows` leaves the statement to SQLAlchemy)
_SELECT_BINDS: dict[tuple[Any, str], tuple[Any, tuple[str, ...], dict[str, Any], dict[str, tuple[str, ...]]] | None] = {}
# (statement, dialect, the padded lengths of its IN lists) -> its SQL with those lists expanded; per driver
# parameter (positional: in order) its name, the statement's parameter it comes from, the index into that IN
# list (None: a plain value; a pair for a list of tuples) and its bind processor; then the result columns'
# processors (None until the first execution)
_SELECTS: dict[tuple[Any, str, tuple[int, ...]], list[Any]] = {}


def select_rows(session: Session, statement: sa.Executable, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """The rows of a SELECT as tuples of the column types' Python values, what `session.execute(statement,
    params).all()` returns, for the queries a page runs with IN lists of varying lengths.  Each IN list is
    padded to a power of two with its last value (the same condition), so the SQL of a statement takes a few
    texts: each is rendered once and the driver's statement cache prepares it once, where SQLAlchemy renders
    every execution's expanded SQL anew and SQLite prepares almost every page's text afresh (0.4-1 ms a
    query in bench/throughput.py).  No autoflush: the ingest reads what it did not write in this session."""
    connection = session.connection()
    dialect = connection.dialect
    binds = _SELECT_BINDS.get((statement, dialect.name), False)
    if binds is False:
        binds = _SELECT_BINDS[(statement, dialect.name)] = _select_binds(statement, dialect)
    if binds is None:
        return [tuple(row) for row in connection.execute(statement, dict(params))]
    compiled, expanding, fixed, splits = binds
    if splits:  # a list of tuples as one array per position (`_as_arrays`)
        params = dict(params)
        for name, parts in splits.items():
            given = list(params.pop(name))
            params.update((part, [row[i] for row in given]) for i, part in enumerate(parts))
    lists = {name: list(params[name] if name in params else fixed[name]) for name in expanding}
    if not all(lists.values()):  # an empty IN list: SQLAlchemy renders it as a condition of its own
        return [tuple(row) for row in connection.execute(statement, dict(params))]
    for values in lists.values():
        values.extend([values[-1]] * (padded_length(len(values)) - len(values)))
    shape = tuple(len(lists[name]) for name in expanding)
    prepared = _SELECTS.get((statement, dialect.name, shape))
    if prepared is None:
        prepared = _SELECTS[(statement, dialect.name, shape)] = _expand_select(compiled, fixed, lists)
    sql, plan, result_processors = prepared
    values: list[Any] = []
    for _, key, index, process in plan:
        if index is None:
            value = params[key] if key in params else fixed[key]
        elif index.__class__ is tuple:
            value = lists[key][index[0]][index[1]]
        else:
            value = lists[key][index]
        values.append(value if process is None else process(value))
    if compiled.positional:
        result = connection.exec_driver_sql(sql, tuple(values))
    else:
        result = connection.exec_driver_sql(sql, {name: value for (name, *_), value in zip(plan, values, strict=True)})
    if result_processors is None:
        result_processors = prepared[2] = [
            column[3]._cached_result_processor(dialect, described[1])
            for column, described in zip(compiled._result_columns, result.cursor.description or (), strict=True)]
    rows = result.fetchall()
    if not rows or not any(result_processors):
        return [tuple(row) for row in rows]
    columns = [column if process is None else list(map(process, column))
               for column, process in zip(zip(*rows, strict=True), result_processors, strict=True)]
    return list(zip(*columns, strict=True))


def forget_statements(statements: Iterable[Any]) -> None:
    """Drop what `select_rows` and `execute_many` keep for `statements`, ones their owner lets go: each
    entry holds its statement and its compiled form, so clearing the owner's dict alone freed nothing,
    and the statements built again after it added entries of their own, burst after burst."""
    gone = {id(statement) for statement in statements}
    if not gone:
        return
    for kept in (_SELECT_BINDS, _SELECTS, _PREPARED):
        for key in list(kept):  # one step under the GIL: a page caching a statement meanwhile is no error
            if id(key[0]) in gone:
                kept.pop(key, None)


def _select_binds(statement: sa.Executable, dialect: sa.Dialect) -> tuple[Any, tuple[str, ...], dict[str, Any],
                                                                      dict[str, tuple[str, ...]]] | None:
    splits: dict[str, tuple[str, ...]] = {}
    if dialect.name == "postgresql":
        statement, splits = _as_arrays(statement, dialect)
    compiled = statement.compile(dialect=dialect)
    if compiled.escaped_bind_names or compiled.literal_execute_params or not compiled._result_columns:
        return None
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    expanding = tuple(sorted(name for name, bind in binds.items() if bind.expanding))
    return compiled, expanding, {name: bind.effective_value for name, bind in binds.items()}, splits


def _array_of(type_: Any, dialect: sa.Dialect) -> sa.ARRAY | None:
    """The array type for an IN list of a column of `type_`: text and integers, which the driver takes as they
    are (None for any other type: its list stays an IN list)."""
    for item in (sa.String, sa.Integer):
        if type_._type_affinity is item and type_.dialect_impl(dialect).bind_processor(dialect) is None:
            return sa.ARRAY(item())
    return None


def _as_arrays(statement: Any, dialect: sa.Dialect) -> tuple[Any, dict[str, tuple[str, ...]]]:
    """For PostgreSQL: `statement` with each `column IN (:list)` as `column = ANY(:list)`, the list one array
    parameter, and each `(a, b, c) IN (:triples)` as `(a, b, c) IN (SELECT * FROM unnest(:triples_0, :triples_1,
    :triples_2))`, one array per position (the names of which are returned by the list's name).  The SQL
    is then the same text whatever the lists' lengths: psycopg parses a statement's text anew at every
    execution once it has more than 50 parameters or 4 KB (`MAX_CACHED_STATEMENT_PARAMS`), which the IN
    lists of a page's look-ups always had (~15 µs a mention in bench/throughput.py), and PostgreSQL
    prepares it once instead of planning every page's text."""
    from sqlalchemy.sql import operators, visitors

    splits: dict[str, tuple[str, ...]] = {}

    def replace(element: Any, **_: Any) -> Any:
        if not (isinstance(element, sa.BinaryExpression) and element.operator is operators.in_op
                and isinstance(element.right, sa.BindParameter) and element.right.expanding):
            return None
        name, left = element.right.key, element.left
        columns = list(left.clauses) if isinstance(left, sa.Tuple) else [left]
        types = [_array_of(column.type, dialect) for column in columns]
        if None in types:
            return None
        if not isinstance(left, sa.Tuple):
            array = element.right._clone()  # its name and any value the statement gives it (`in_([...])`)
            array.expanding, array.type = False, types[0]
            return left == sa.any_(array)
        if element.right.value is not None:  # a list the statement itself holds: left as it is
            return None
        names = splits[name] = tuple(f"{name}_{i}" for i in range(len(columns)))
        arrays = [sa.bindparam(part, type_=array) for part, array in zip(names, types, strict=True)]
        rows = sa.func.unnest(*arrays).table_valued(*names).render_derived()
        return left.in_(sa.select(*rows.c))

    return visitors.replacement_traverse(statement, {}, replace), splits


def _expand_select(compiled: Any, fixed: Mapping[str, Any], lists: Mapping[str, list[Any]]) -> list[Any]:
    expanded = compiled._process_parameters_for_postcompile({**fixed, **lists})
    sources: dict[str, tuple[str, Any]] = {}
    for name, values in lists.items():
        width = len(values[0]) if isinstance(values[0], tuple) else 0
        for i, driver_name in enumerate(expanded.parameter_expansion[name]):
            sources[driver_name] = (name, divmod(i, width) if width else i)
    if expanded.positiontup is not None:
        names = list(expanded.positiontup)
    else:
        names = [name for name in compiled.bind_names.values() if name not in lists]
        names += [driver_name for name in lists for driver_name in expanded.parameter_expansion[name]]
    processors = {**compiled._bind_processors, **expanded.processors}
    plan = [(name, *sources.get(name, (name, None)), processors.get(name)) for name in names]
    return [expanded.statement, plan, None]


def _encoder(*, ensure_ascii: bool) -> Callable[[Any], str]:
    """`json.dumps` with its default options (or ensure_ascii=False), the same text, without building the
    C encoder anew for every document (most of the cost of a small one: an event's `{"mention_id": 1}`).
    No check for circular references: the ingest's documents come from JSON or are built by our code."""
    base = json.JSONEncoder(ensure_ascii=ensure_ascii)
    make = json.encoder.c_make_encoder  # type: ignore[attr-defined]
    if make is None:  # no C accelerator: the standard path
        return base.encode
    escape = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    encode = make(None, base.default, escape, None, ": ", ", ", False, False, True)

    def dumps(value: Any) -> str:
        if value.__class__ is str:
            return escape(value)
        return "".join(encode(value, 0))
    return dumps


json_dumps = _encoder(ensure_ascii=True)  # json.dumps(value)
json_dumps_unicode = _encoder(ensure_ascii=False)  # json.dumps(value, ensure_ascii=False)


_BOOLEANS = frozenset({bool, type(None)})
_JSON_CONTAINERS = frozenset({dict, list})


class SerializedJSON:
    """A JSON column's value with the text `json_dumps` made of it, for `execute_many` on SQLite, which stores
    that text (the ingest serialises a mention's raw payload once, to check it, and hands the text on)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def stores_json_dumps(session: Session) -> bool:
    """True if `execute_many` stores a JSON column as `json_dumps`' text (SQLite, the default serializer):
    then it takes a `SerializedJSON` for the value."""
    dialect = session.get_bind().dialect
    return dialect.name == "sqlite" and dialect._json_serializer is None  # type: ignore[attr-defined]


def _column_converter(type_: Any, dialect: sa.Dialect, process: Callable[[Any], Any]) -> ColumnConverter:
    """A page's column through `process`, the type's bind processor, with the same result and fewer calls for
    the types the ingest writes most: a boolean is given to the driver as it is (True and False are what the
    processor gives; sqlite3 stores them as 1 and 0 either way), a UTC time is converted in one step, and on
    SQLite a JSON object or list is serialised with the dialect's serializer directly."""
    if isinstance(type_, sa.Boolean):
        def booleans(column: list[Any]) -> list[Any]:
            return column if set(map(type, column)) <= _BOOLEANS else list(map(process, column))
        return booleans
    if isinstance(type_, model.UTCDateTime):
        impl = type_.impl_instance.dialect_impl(dialect)
        if _sqlite_datetime_format(impl):
            one = _utc_for_sqlite
        elif impl.bind_processor(dialect) is None:  # psycopg takes the naive datetime itself
            one = model.naive_utc
        else:
            one = process

        def times(column: list[Any]) -> list[Any]:
            if column.count(None) == len(column):
                return column
            # each distinct time converted once: most of a page's times are its `now`
            converted = {value: one(value) for value in set(column) if value is not None}
            return [None if value is None else converted[value] for value in column]
        return times
    if isinstance(type_, sa.JSON) and dialect.name == "sqlite":
        serialize = dialect._json_serializer or json_dumps  # type: ignore[attr-defined]
        empty = {dict: serialize({}), list: serialize([])}

        def documents(column: list[Any]) -> list[Any]:
            types = set(map(type, column))
            if types <= _JSON_CONTAINERS:
                return [serialize(value) if value else empty[type(value)] for value in column]
            if SerializedJSON in types:  # its text is what `process` gives for the value it was made of
                return [value.text if type(value) is SerializedJSON else process(value) for value in column]
            return list(map(process, column))
        return documents
    return lambda column: list(map(process, column))


_SQLITE_DATETIME = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"


def _sqlite_datetime_format(impl: Any) -> bool:
    """True if SQLite stores this DATETIME as SQLAlchemy's default text, which isoformat(" ", "microseconds")
    writes the same for the years 1-9999."""
    return getattr(impl, "_storage_format", None) == _SQLITE_DATETIME


def _utc_for_sqlite(value: datetime) -> str:
    if value.tzinfo is UTC:  # the usual time: its text without the "+00:00" is the naive UTC time's
        return value.isoformat(" ", "microseconds")[:-6]
    return model.naive_utc(value).isoformat(" ", "microseconds")


# --------------------------------------------------------------------------- cursors


def get_cursor(session: Session, source: str) -> str:
    row = session.get(Cursor, source)
    return row.value if row else ""


def set_cursor(session: Session, source: str, value: str, *, now: datetime) -> None:
    """One INSERT ... ON CONFLICT DO UPDATE (no ORM object: an ingest's commit has nothing of it to flush)."""
    statement = _SET_CURSOR.get(session.get_bind().dialect.name)
    if statement is None:
        insert = insert_for(session)(Cursor.__table__)
        statement = _SET_CURSOR[session.get_bind().dialect.name] = insert.on_conflict_do_update(
            index_elements=["source"], set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at})
    execute_many(session, statement, [{"source": source, "value": value, "updated_at": now}])


_SET_CURSOR: dict[str, Any] = {}


def insert_for(session: Session):  # type: ignore[no-untyped-def]
    """The dialect's INSERT (for ON CONFLICT).  PostgreSQL's dialect is imported only on PostgreSQL:
    on SQLite it would cost the daemon 2 MB it never uses (bench/memory.py)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    return sqlite.insert


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


def live_leases(engine: Engine, *, prefix: str, now: datetime) -> list[tuple[str, str]]:
    """(name, holder) of the unexpired leases whose name starts with `prefix`."""
    table = Lease.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.name, table.c.holder).where(
            table.c.name.startswith(prefix), table.c.holder != "", table.c.expires_at >= now)).all()
    return [(name, holder) for name, holder in rows]


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
