"""Alembic's environment: migrations run on the connection monitor.migrations.upgrade hands over,
or, from the `alembic` command line (making a revision), on DATABASE_URL's database."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from monitor import model  # noqa: F401  (registers the tables, for --autogenerate)


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=SQLModel.metadata,
                      render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `mention-monitor db upgrade`")
given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    from monitor.settings import Settings
    from monitor.store import make_engine

    engine = make_engine(Settings().database_url)
    with engine.connect() as conn:
        run(conn)
        conn.commit()
    engine.dispose()
