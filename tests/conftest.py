"""Shared fixtures: a fresh database on SQLite and on PostgreSQL, the default rules, a clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from monitor.clock import SettableClock
from monitor.rules import load_rules
from monitor.store import create_schema, make_engine
from tests.sandbox_fixtures import sandbox  # noqa: F401  (the shared `sandbox` fixture)

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("MM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", default=False, help="run the full crash soak")


def _postgres_reachable() -> str:
    try:
        engine = make_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return ""
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


_PG_PROBLEM: str | None = None
_PG_SESSION_URL = ""


def postgres_url_or_skip() -> str:
    """A database of this test run's own (so parallel runs never drop each other's tables)."""
    global _PG_PROBLEM, _PG_SESSION_URL
    if _PG_PROBLEM is None:
        _PG_PROBLEM = _postgres_reachable()
    if _PG_PROBLEM:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI and unreachable: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable ({_PG_PROBLEM}); set MM_TEST_POSTGRES_URL")
    if not _PG_SESSION_URL:
        name = f"mm_test_{os.getpid()}"
        admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        admin.dispose()
        _PG_SESSION_URL = PG_URL.rsplit("/", 1)[0] + "/" + name
    return _PG_SESSION_URL


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _PG_SESSION_URL:
        return
    name = _PG_SESSION_URL.rsplit("/", 1)[1]
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    finally:
        admin.dispose()


def drop_schema(engine: sa.engine.Engine) -> None:
    """Empty a test database: the tables and the migrations' stamp (else a new start finds it "up to date")."""
    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind; the same test runs on both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mm.db'}"
        return
    url = postgres_url_or_skip()
    engine = make_engine(url)
    drop_schema(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.engine.Engine]:
    engine = make_engine(db_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def ruleset():
    return load_rules(ROOT / "rules.yaml")


@pytest.fixture
def clock() -> SettableClock:
    # a Tuesday morning in Copenhagen, inside business hours
    return SettableClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))


SIMPLE_RULES = """\
version: 1
brand:
  name: Nordlys Shop
  default_language: en
  languages: [en, da, hr, ro, id, zh]
  handles: {x: nordlysshop, facebook: Nordlys Shop}
  x_user_id: "1600000000000000001"
  facebook_page_id: "104000000000001"
  keywords: [nordlys]
sources:
  - {name: x-mentions, platform: x, kind: mention, every: 60s}
  - {name: x-search, platform: x, kind: search, query: nordlys, every: 60s}
  - {name: x-own, platform: x, kind: own, every: 60s}
  - {name: fb-comments, platform: facebook, kind: comment, every: 60s}
  - {name: fb-messages, platform: facebook, kind: message, every: 60s}
channels: {alerts: "#cs-alerts", escalations: "#cs-escalations", ops: "#cs-ops"}
slack: {approvers: [U0APPROVER1], oncall: S0ONCALL}
business_hours: {timezone: Europe/Copenhagen, days: [mon, tue, wed, thu, fri], hours: "08:00-18:00",
                 holidays: [2026-12-24]}
escalation:
  warn_at: 0.75
  steps:
    - {after: 0m, channel: escalations, notify: [S0CSLEADS]}
    - {after: 30m, channel: escalations, notify: [U0HEADOFCS]}
grouping: {window: 2m, max_alerts: 3}
acknowledgement: {cooldown: 24h, dry_run: false}
templates:
  move_to_dm:
    en: "Hi {author}, we're sorry to hear that. Please send us a DM with your order number so we can sort it out."
    da: "Hej {author}, det er vi kede af at høre. Send os en DM med dit ordrenummer, så løser vi det."
  move_to_dm_dm_sent:
    en: "Hi {author}, we're sorry to hear that. We've sent you a DM so we can sort it out."
  move_to_dm_message:
    en: "Hi {author}, this is the {brand} team. Could you send us your order number? We'll sort it out here."
  move_to_dm_private:
    en: "Hi {author}, this is the {brand} team about your comment. What is your order number?"
rules:
  - name: drop-own-posts
    when: {from_brand: true}
    drop: true
  - name: business-hours-complaint
    when: {keywords_any: [invoice]}
    alert: {channel: alerts, severity: normal, sla: 1h, business_hours: true}
  - name: late-order
    when: {keywords_any: ["where is my", "is late"]}
    alert: {channel: alerts, severity: high, sla: 30m}
  - name: urgent
    when: {keywords_any: [broken, refund, "never arrived", furious, "still waiting", odbijen, "ikke kommet"]}
    alert: {channel: alerts, severity: high, sla: 30m}
    acknowledge: {template: move_to_dm, private_template: move_to_dm_private, mode: auto}
"""


@pytest.fixture
def simple_rules():
    """Keyword rules: pipeline, SLA and Slack tests must not depend on how good triage is."""
    from monitor.rules import parse_rules

    return parse_rules(SIMPLE_RULES, filename="simple.yaml")


@pytest.fixture
def simple_rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "simple.yaml"
    path.write_text(SIMPLE_RULES, encoding="utf-8")
    return path
