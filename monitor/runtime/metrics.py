"""Prometheus metrics and /healthz on one optional port (MENTION_MONITOR_METRICS_PORT).

Each Metrics object has its own CollectorRegistry, so several daemons (or tests) in one
process never share counters.  The daemon calls the observe_/set_/mark_ methods; the
HTTP server runs in a daemon thread (http.server), serving /metrics and /healthz.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.model import Case, CaseState, Outbox, OutboxState, SourceHealth

if TYPE_CHECKING:
    from monitor.cases.pipeline import IngestResult

STALE_AFTER_INTERVALS = 3  # a source is unhealthy when it has not polled successfully for this many intervals
SCHEDULER_TIMEOUT = timedelta(seconds=60)


class Metrics:
    """The daemon's counters and gauges, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.mentions = Counter("mention_monitor_mentions_ingested", "Mentions stored (new, after dedup)",
                                ["platform", "source"], registry=r)
        self.duplicates = Counter("mention_monitor_mentions_duplicate", "Fetched mentions already stored",
                                  ["source"], registry=r)
        self.cases_opened = Counter("mention_monitor_cases_opened", "Cases opened", ["platform"], registry=r)
        self.alerts = Counter("mention_monitor_alerts", "Alerts posted to Slack", registry=r)
        self.breaches = Counter("mention_monitor_sla_breaches", "Cases that missed their response target",
                                registry=r)
        self.poll_errors = Counter("mention_monitor_poll_errors", "Failed polls by kind of failure",
                                   ["source", "kind"], registry=r)
        self.open_cases = Gauge("mention_monitor_open_cases", "Cases not resolved yet", registry=r)
        self.quota = Gauge("mention_monitor_api_quota_remaining", "API requests left in the rate-limit window",
                           ["source"], registry=r)
        self.backlog = Gauge("mention_monitor_outbox_backlog", "Side effects waiting for delivery", registry=r)
        self.last_poll_ok = Gauge("mention_monitor_last_poll_success_timestamp_seconds",
                                  "When the source last polled successfully", ["source"], registry=r)
        self.scheduler_beat = Gauge("mention_monitor_scheduler_heartbeat_timestamp_seconds",
                                    "Last time a scheduler job ran", registry=r)
        self.component_up = Gauge("mention_monitor_component_up",
                                  "1 while a part the daemon depends on works (database_writes, slack_socket_mode)",
                                  ["component"], registry=r)
        self._lock = threading.Lock()
        self._poll_ok: dict[str, datetime] = {}
        self._scheduler_alive: datetime | None = None
        self._components: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ what the daemon calls

    def observe_ingest(self, source: str, platform: str, result: IngestResult) -> None:
        """One stored page."""
        self.mentions.labels(platform=platform, source=source).inc(result.stored)
        self.duplicates.labels(source=source).inc(result.duplicates)
        self.cases_opened.labels(platform=platform).inc(result.cases_opened)

    def observe_poll_error(self, source: str, kind: str) -> None:
        """kind: rate_limited | transient | auth_failed | bad_payload (PollOutcome.status)."""
        self.poll_errors.labels(source=source, kind=kind).inc()

    def observe_alert(self, n: int = 1) -> None:
        self.alerts.inc(n)

    def observe_breaches(self, n: int) -> None:
        if n > 0:
            self.breaches.inc(n)

    def set_open_cases(self, n: int) -> None:
        self.open_cases.set(n)

    def set_quota(self, source: str, remaining: int | None) -> None:
        if remaining is not None:
            self.quota.labels(source=source).set(remaining)

    def set_backlog(self, n: int) -> None:
        self.backlog.set(n)

    def mark_poll_ok(self, source: str, at: datetime) -> None:
        with self._lock:
            self._poll_ok[source] = at
        self.last_poll_ok.labels(source=source).set(at.timestamp())

    def mark_scheduler_alive(self, at: datetime) -> None:
        with self._lock:
            self._scheduler_alive = at
        self.scheduler_beat.set(at.timestamp())

    def refresh(self, engine: Engine) -> None:
        """Set the open-cases and outbox-backlog gauges from the database (cheap counts; call from a sweep)."""
        with Session(engine) as session:
            open_cases = session.exec(select(sa.func.count()).select_from(Case)
                                      .where(Case.state != CaseState.RESOLVED.value)).one()
            backlog = session.exec(select(sa.func.count()).select_from(Outbox).where(
                Outbox.state.in_([OutboxState.PENDING.value, OutboxState.SENDING.value]))).one()
        self.set_open_cases(int(open_cases))
        self.set_backlog(int(backlog))

    def set_component(self, name: str, *, ok: bool, detail: str = "") -> None:
        """A part that can fail while the daemon runs on (the database taking writes, Slack's Socket Mode):
        shown on /healthz, and /healthz is unhealthy while it is down."""
        with self._lock:
            self._components[name] = {"ok": ok, **({"detail": detail} if detail else {})}
        self.component_up.labels(component=name).set(1 if ok else 0)

    def set_database_ok(self, ok: bool) -> None:
        self.set_component("database_writes", ok=ok)

    def components(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: dict(state) for name, state in self._components.items()}

    def poll_ok_at(self, source: str) -> datetime | None:
        with self._lock:
            return self._poll_ok.get(source)

    def scheduler_alive_at(self) -> datetime | None:
        with self._lock:
            return self._scheduler_alive

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, *, port: int, health: Callable[[], HealthReport], host: str = "0.0.0.0") -> MetricsServer:
        return serve(port=port, metrics=self, health=health, host=host)


# --------------------------------------------------------------------------- health


@dataclass(frozen=True, slots=True)
class HealthReport:
    ok: bool
    checks: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"status": "ok" if self.ok else "unhealthy", "checks": self.checks}, sort_keys=True)


class HealthCheck:
    """/healthz: the scheduler runs, the database answers, every source polled within three of its intervals.

    A source's last success is the later of this process's mark and the database's
    SourceHealth row, so on PostgreSQL a replica that does not hold a source's lease still
    reports the deployment's truth.  Until three intervals have passed since start, a source
    that has not polled yet is "starting", not failing."""

    def __init__(
        self, *, metrics: Metrics, engine: Engine | None, intervals: Mapping[str, timedelta],
        now: Callable[[], datetime], started_at: datetime, scheduler_timeout: timedelta = SCHEDULER_TIMEOUT,
    ) -> None:
        self.metrics = metrics
        self.engine = engine
        self.intervals = dict(intervals)
        self.now = now
        self.started_at = started_at
        self.scheduler_timeout = scheduler_timeout

    def __call__(self) -> HealthReport:
        now = self.now()
        checks: dict[str, Any] = {}
        beat = self.metrics.scheduler_alive_at()
        fresh = beat is not None and now - beat <= self.scheduler_timeout
        starting = beat is None and now - self.started_at <= self.scheduler_timeout
        checks["scheduler"] = {"ok": fresh or starting, "last_beat": beat.isoformat() if beat else None}
        db_success: dict[str, datetime] = {}
        try:
            if self.engine is not None:
                with Session(self.engine) as session:
                    rows = session.exec(select(SourceHealth.source, SourceHealth.last_success_at)).all()
                db_success = {str(s): t for s, t in rows if t is not None}
            checks["database"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"; the reason is shown
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        sources = {}
        for name, every in self.intervals.items():
            marks = [t for t in (self.metrics.poll_ok_at(name), db_success.get(name)) if t is not None]
            last = max(marks) if marks else None
            limit = every * STALE_AFTER_INTERVALS
            ok = (now - last <= limit) if last else (now - self.started_at <= limit)
            sources[name] = {"ok": ok, "last_success": last.isoformat() if last else None,
                             "max_age_s": limit.total_seconds()}
        checks["sources"] = sources
        components = self.metrics.components()
        checks.update(components)
        healthy = checks["scheduler"]["ok"] and checks["database"]["ok"] and all(s["ok"] for s in sources.values()) \
            and all(c["ok"] for c in components.values())
        return HealthReport(ok=bool(healthy), checks=checks)


# --------------------------------------------------------------------------- HTTP


class MetricsServer:
    """A running /metrics + /healthz server; `port` is the bound port (ask for 0 in tests)."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port = server.server_address[1]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(*, port: int, metrics: Metrics, health: Callable[[], HealthReport], host: str = "0.0.0.0") -> MetricsServer:
    """Serve /metrics (Prometheus text format) and /healthz (200 or 503 JSON) on `port`, in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.exposition(), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/health"):
                try:
                    report = health()
                except Exception as exc:  # noqa: BLE001 - a crashing check is itself unhealthy
                    report = HealthReport(ok=False, checks={"error": type(exc).__name__})
                self._send(200 if report.ok else 503, report.to_json().encode(), "application/json")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain; charset=utf-8")

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # scrapes every 15 s would flood the log
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
