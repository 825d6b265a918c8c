"""`python -m monitor.migrations`: upgrade the database $MENTION_MONITOR_MIGRATE_URL names, then exit.

`monitor.store.create_schema(in_child=True)` runs this at the daemon's start, so the daemon itself
never imports Alembic.  Exit status 3 (its stdout the revision found) means SchemaTooNew."""

from __future__ import annotations

import os
import sys

from monitor.store import MIGRATE_URL_ENV, SCHEMA_TOO_NEW_EXIT, SchemaTooNew, create_schema, make_engine


def main() -> int:
    engine = make_engine(os.environ[MIGRATE_URL_ENV])
    try:
        create_schema(engine)
    except SchemaTooNew as exc:
        print(exc)
        return SCHEMA_TOO_NEW_EXIT
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
