"""`mention-monitor db current | upgrade`: where the database's schema is, and bringing it to this release's.

`run` upgrades by itself at start; these are for an operator who wants to upgrade (or look) first.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from monitor import messages as msg
from monitor.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="the database schema: `db current`, `db upgrade`")
    which = parser.add_subparsers(dest="db_command", required=True)
    for name, help_text, func in (("current", "show the schema revision the database is at", cmd_current),
                                  ("upgrade", "migrate the database to this release's schema", cmd_upgrade)):
        sub = which.add_parser(name, help=help_text)
        sub.add_argument("--db", help="database URL (default: $DATABASE_URL or sqlite:///mention-monitor.db)")
        sub.set_defaults(func=func)


def _url(args: argparse.Namespace) -> str:
    return args.db or Settings().database_url


def cmd_current(args: argparse.Namespace) -> int:
    from monitor import migrations
    from monitor.cli import sa_url
    from monitor.store import make_engine, schema_revision

    url = _url(args)
    engine = make_engine(url)
    try:
        found = schema_revision(engine)
    finally:
        engine.dispose()
    head, shown = migrations.head(), sa_url(url)
    if found is None:
        print(msg.CLI_DB_NO_SCHEMA.format(url=shown, head=head))
        return 1
    if found == head:
        print(msg.CLI_DB_CURRENT.format(url=shown, revision=found))
        return 0
    if not migrations.known(found):
        print(msg.CLI_DB_TOO_NEW.format(url=shown, revision=found, head=head), file=sys.stderr)
        return 1
    print(msg.CLI_DB_BEHIND.format(url=shown, revision=found, head=head))
    return 1


def cmd_upgrade(args: argparse.Namespace) -> int:
    from monitor import migrations
    from monitor.cli import sa_url
    from monitor.store import SchemaTooNew, create_schema, make_engine

    url = _url(args)
    engine = make_engine(url)
    try:
        create_schema(engine)
    except SchemaTooNew as exc:
        print(msg.CLI_DB_TOO_NEW.format(url=sa_url(url), revision=exc, head=migrations.head()), file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(msg.CLI_DB_UPGRADED.format(url=sa_url(url), revision=migrations.head()))
    return 0
