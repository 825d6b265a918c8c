"""Schema migrations (Alembic): upgrade a database to this release's schema, and say where one is.

Each schema change is one revision file in versions/; docs/deploy.md says how to add one.
`monitor.store.create_schema` runs `upgrade` at every start (under an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

HERE = Path(__file__).resolve().parent


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration without an alembic.ini: the scripts are this package's."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The revision this release's schema is at."""
    heads = _scripts().get_heads()
    if len(heads) != 1:  # two revisions with the same down_revision: one must follow the other
        raise RuntimeError(f"the migrations have {len(heads)} heads ({', '.join(sorted(heads))}); expected one")
    return heads[0]


def known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except Exception:  # alembic raises its own error for an id it does not know
        return False


def baseline_metadata() -> MetaData:
    """The tables as the baseline revision writes them: what a release before migrations created."""
    module = importlib.import_module("monitor.migrations.versions.0002_baseline")
    return module.baseline()


def current(connection: Connection) -> str | None:
    """The revision the database is stamped with; None before any (fresh, or made by create_all)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection, *, to: str = "head") -> None:
    command.upgrade(config(connection), to)
