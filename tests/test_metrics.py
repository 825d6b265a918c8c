"""Prometheus metrics and /healthz, scraped over HTTP like Prometheus and a load balancer would."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.cases.pipeline import IngestResult
from monitor.clock import SettableClock
from monitor.model import SourceHealth
from monitor.runtime.metrics import HealthCheck, Metrics, MetricsServer
from monitor.store import make_engine, transaction

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if m and m.group(1) == name and ",".join(sorted((m.group(2) or "").split(","))) == want:
            return float(m.group(3))
    return None


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(START)


@pytest.fixture
def served(engine: Any, clock: SettableClock) -> Iterator[tuple[Metrics, MetricsServer, str]]:
    metrics = Metrics()
    health = HealthCheck(metrics=metrics, engine=engine, now=clock.now, started_at=START,
                         intervals={"x-mentions": timedelta(seconds=60), "fb-comments": timedelta(seconds=120)})
    server = metrics.serve(port=0, health=health, host="127.0.0.1")
    try:
        yield metrics, server, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def test_counters_and_gauges_move_after_calls(served: tuple[Metrics, MetricsServer, str]) -> None:
    metrics, _, url = served
    status, before = get(url + "/metrics")
    assert status == 200
    assert sample(before, "mention_monitor_alerts_total") == 0.0
    assert sample(before, "mention_monitor_mentions_ingested_total", platform="x", source="x-mentions") is None

    metrics.observe_ingest("x-mentions", "x", IngestResult(source="x-mentions", fetched=12, stored=9, duplicates=3,
                                                            cases_opened=2))
    metrics.observe_ingest("x-mentions", "x", IngestResult(source="x-mentions", fetched=1, stored=1))
    metrics.observe_alert()
    metrics.observe_alert(2)
    metrics.observe_breaches(1)
    metrics.observe_poll_error("fb-comments", "rate_limited")
    metrics.observe_poll_error("fb-comments", "rate_limited")
    metrics.observe_poll_error("x-mentions", "transient")
    metrics.set_open_cases(7)
    metrics.set_quota("x-mentions", 13)
    metrics.set_backlog(4)
    metrics.mark_poll_ok("x-mentions", START)

    _, after = get(url + "/metrics")
    assert sample(after, "mention_monitor_mentions_ingested_total", platform="x", source="x-mentions") == 10.0
    assert sample(after, "mention_monitor_mentions_duplicate_total", source="x-mentions") == 3.0
    assert sample(after, "mention_monitor_cases_opened_total", platform="x") == 2.0
    assert sample(after, "mention_monitor_alerts_total") == 3.0
    assert sample(after, "mention_monitor_sla_breaches_total") == 1.0
    assert sample(after, "mention_monitor_poll_errors_total", source="fb-comments", kind="rate_limited") == 2.0
    assert sample(after, "mention_monitor_poll_errors_total", source="x-mentions", kind="transient") == 1.0
    assert sample(after, "mention_monitor_open_cases") == 7.0
    assert sample(after, "mention_monitor_api_quota_remaining", source="x-mentions") == 13.0
    assert sample(after, "mention_monitor_outbox_backlog") == 4.0
    assert sample(after, "mention_monitor_last_poll_success_timestamp_seconds", source="x-mentions") == START.timestamp()


def test_refresh_counts_open_cases_and_backlog_in_the_database(engine: Any) -> None:
    from monitor.model import Case, Outbox

    with transaction(engine) as s:
        s.add_all([Case(platform="x", conversation_id="1", state="open"),
                   Case(platform="x", conversation_id="2", state="acknowledged"),
                   Case(platform="x", conversation_id="3", state="resolved"),
                   Outbox(kind="alert", dedup_key="a", state="pending"),
                   Outbox(kind="alert", dedup_key="b", state="sending"),
                   Outbox(kind="alert", dedup_key="c", state="sent")])
    metrics = Metrics()
    metrics.refresh(engine)
    text = metrics.exposition().decode()
    assert sample(text, "mention_monitor_open_cases") == 2.0
    assert sample(text, "mention_monitor_outbox_backlog") == 2.0


def test_registries_are_per_instance() -> None:
    one, two = Metrics(), Metrics()
    one.observe_alert(5)
    assert sample(two.exposition().decode(), "mention_monitor_alerts_total") == 0.0
    assert sample(one.exposition().decode(), "mention_monitor_alerts_total") == 5.0


def test_healthz_is_200_while_fresh_and_503_when_a_source_is_stale(
    served: tuple[Metrics, MetricsServer, str], clock: SettableClock, engine: Any,
) -> None:
    metrics, _, url = served
    status, body = get(url + "/healthz")
    assert status == 200, body  # just started: nothing polled yet, still within the grace
    metrics.mark_scheduler_alive(START)
    metrics.mark_poll_ok("x-mentions", START)
    with transaction(engine) as s:  # another replica polled the Facebook source
        s.add(SourceHealth(source="fb-comments", last_success_at=START + timedelta(seconds=30)))

    clock.set(START + timedelta(seconds=170))
    metrics.mark_scheduler_alive(clock.now())
    status, body = get(url + "/healthz")
    assert status == 200, body
    assert json.loads(body)["checks"]["sources"]["fb-comments"]["last_success"] == "2026-11-24T09:00:30+00:00"

    clock.set(START + timedelta(seconds=181))  # three 60 s intervals without a successful X poll
    metrics.mark_scheduler_alive(clock.now())
    status, body = get(url + "/healthz")
    assert status == 503
    report = json.loads(body)
    assert report["status"] == "unhealthy"
    assert report["checks"]["sources"]["x-mentions"] == {
        "ok": False, "last_success": "2026-11-24T09:00:00+00:00", "max_age_s": 180.0}
    assert report["checks"]["sources"]["fb-comments"]["ok"] is True
    assert report["checks"]["database"] == {"ok": True}

    metrics.mark_poll_ok("x-mentions", clock.now())
    assert get(url + "/healthz")[0] == 200

    clock.advance(61)  # the scheduler stopped beating for more than a minute
    metrics.mark_poll_ok("x-mentions", clock.now())
    status, body = get(url + "/healthz")
    assert status == 503 and json.loads(body)["checks"]["scheduler"]["ok"] is False


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Any) -> None:
    metrics = Metrics()
    metrics.mark_scheduler_alive(START)
    broken = make_engine("postgresql://nobody@127.0.0.1:1/none")  # nothing listens on port 1
    health = HealthCheck(metrics=metrics, engine=broken, now=lambda: START, started_at=START, intervals={})
    server = metrics.serve(port=0, health=health, host="127.0.0.1")
    try:
        status, body = get(f"http://127.0.0.1:{server.port}/healthz")
        assert get(f"http://127.0.0.1:{server.port}/nothing")[0] == 404
    finally:
        server.stop()
    assert status == 503
    assert json.loads(body)["checks"]["database"] == {"ok": False, "error": "OperationalError"}
