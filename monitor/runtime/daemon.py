"""The daemon: one APScheduler job per source, the outbox, the SLA sweep, rules hot reload.

A rate-limited source waits for its reset while the others go on; transient failures
back off as the SOURCES policy of monitor/retry.py says; a rejected token pauses the
source and tells the operator once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from connectors.base import (
    AuthFailed,
    BadPayload,
    ConnectorError,
    FetchResult,
    Notifier,
    RateLimited,
    Source,
    Transient,
)
from monitor import messages as msg
from monitor.cases import pipeline, sla
from monitor.cases.acknowledge import ReplyDeliverer
from monitor.cases.pipeline import IngestResult, ReplyPolicy
from monitor.clock import Clock
from monitor.delivery import notes, outbox
from monitor.delivery.notes import humanize
from monitor.model import Outbox, OutboxKind, OutboxState, SourceHealth
from monitor.retry import AUTH_PROBES, SOURCES
from monitor.rules import RulesError, load_rules
from monitor.rules.schema import Ruleset
from monitor.runtime.memory import trim_memory
from monitor.store import acquire_lease, get_cursor, is_postgres, live_leases, release_lease, transaction

log = logging.getLogger(__name__)

MAX_PAGES_PER_POLL = 20  # drain a backlog page by page, but let other jobs run in between
OUTAGE_NOTICE_AFTER = timedelta(minutes=10)
# A replica that dies loses its sources after this long; tests shorten it.
SWEEP_EVERY_S = 15.0  # the SLA sweep, in the daemon's clock
LEASE_TTL = timedelta(seconds=30)  # the default; Settings.lease_ttl (MENTION_MONITOR_LEASE_TTL) sets it


@dataclass(slots=True)
class SourceBinding:
    """A source from rules.yaml and the connector that serves it."""

    name: str
    platform: str
    kind: str
    query: str
    every: timedelta
    connector: Any
    secret_env: str = ""  # which variable to fix when its token is rejected


@dataclass(slots=True)
class PollOutcome:
    source: str
    status: str  # ok | skipped | rate_limited | transient | auth_failed | bad_payload | database_unavailable
    results: list[IngestResult] = field(default_factory=list)


def policy_for(connector: Source) -> ReplyPolicy:
    """The reply policy the core applies to a connector's platform (connectors/platforms.py)."""
    return ReplyPolicy(platform=connector.platform, dm_link=connector.dm_link)


class Daemon:
    def __init__(
        self, *, engine: Engine, rules_path: str | Path, ruleset: Ruleset, sources: Mapping[str, SourceBinding],
        notifier: Notifier, clock: Clock | None = None, worker: str = "", dry_run: bool = False,
        policies: Mapping[str, ReplyPolicy] | None = None, lease_ttl: timedelta = LEASE_TTL,
        claim_ttl: timedelta = outbox.CLAIM_TTL,
    ) -> None:
        self.engine = engine
        self.rules_path = Path(rules_path)
        self.ruleset = ruleset
        self.sources = dict(sources)
        self.notifier = notifier
        self.clock = clock or Clock()
        self.dry_run = dry_run
        self.worker = worker or (f"{socket.gethostname()}-{os.getpid()}" if is_postgres(engine) else "local")
        connectors_by_platform = {b.platform: b.connector for b in self.sources.values()}
        self.policies = dict(policies) if policies is not None else {
            p: policy_for(c) for p, c in connectors_by_platform.items()}
        self.replies = ReplyDeliverer(engine=engine, sources=connectors_by_platform, worker=self.worker)
        self.lease_ttl = lease_ttl
        self.deliverer = outbox.Deliverer(
            engine=engine, notifier=notifier, sources=connectors_by_platform, worker=self.worker,
            timezone=lambda: self.ruleset.business_hours.timezone, replies=self.replies,
            claim_ttl=claim_ttl, ops_channel=lambda: self.ruleset.channels.get("ops", ""))
        self._rules_digest = _digest(self.rules_path)
        self._refused_digest = ""
        self._unprobed = set(self.sources)  # sources not polled since this process started
        self._stop = threading.Event()
        self._wake_lock = threading.Lock()
        self._database_down_since: datetime | None = None  # the first failure of the current outage
        self._database_lock = threading.Lock()
        self.scheduler: BackgroundScheduler | None = None
        self.metrics: Any = None  # monitor.runtime.metrics.Metrics when a metrics port is configured
        if not is_postgres(engine):
            self._release_orphan_claims()

    # ------------------------------------------------------------------ one step each

    def poll(self, name: str) -> PollOutcome:
        try:
            outcome = self._poll(name)
            self._database_ok()
        except OperationalError as exc:
            # Nothing of this page was stored and the cursor did not move (one transaction): the next
            # poll fetches the same mentions again, so a database outage loses none.
            self._database_failed(exc)
            outcome = PollOutcome(name, "database_unavailable")
        if self.metrics is not None:
            binding = self.sources[name]
            for result in outcome.results:
                self.metrics.observe_ingest(name, binding.platform, result)
            if outcome.status == "ok":
                self.metrics.mark_poll_ok(name, self.clock.now())
                quota = self._health(name).quota_remaining
                if quota is not None:
                    self.metrics.set_quota(name, quota)
            elif outcome.status != "skipped":
                self.metrics.observe_poll_error(name, outcome.status)
        return outcome

    def _poll(self, name: str) -> PollOutcome:
        binding = self.sources[name]
        now = self.clock.now()
        if not self._may_hold(name, now=now) or \
                not acquire_lease(self.engine, name=f"source:{name}", holder=self.worker, ttl=self.lease_ttl, now=now):
            return PollOutcome(name, "skipped")
        health = self._health(name)
        # A rejected token is probed again on a back-off, and at once after a restart (which is
        # when an operator has set a fresh one): it never stops a source for good.
        fresh_start = name in self._unprobed
        self._unprobed.discard(name)
        if health.retry_at and now < health.retry_at and not (fresh_start and health.status == "auth_failed"):
            return PollOutcome(name, "skipped")
        outcome = PollOutcome(name, "ok")
        for _ in range(MAX_PAGES_PER_POLL):
            if self._stop.is_set():
                break
            with transaction(self.engine) as s:
                cursor = get_cursor(s, name)
            try:
                fetched = binding.connector.fetch(kind=binding.kind, cursor=cursor, query=binding.query)
            except RateLimited as exc:
                log.warning(msg.LOG_RATE_LIMITED, name, exc.until.isoformat())
                self._failed(name, status="rate_limited", retry_at=exc.until, error=str(exc), notify=False)
                outcome.status = "rate_limited"
                return outcome
            except AuthFailed as exc:
                log.error(msg.LOG_AUTH_FAILED, name, exc)
                retry_at = now + AUTH_PROBES.delay(health.failures + 1)
                self._failed(name, status="auth_failed", retry_at=retry_at, error=str(exc), notify=True,
                             env=binding.secret_env)
                outcome.status = "auth_failed"
                return outcome
            except (Transient, BadPayload) as exc:
                failures = health.failures + 1
                delay = SOURCES.delay(failures, base=binding.every)
                if isinstance(exc, BadPayload):
                    log.warning(msg.LOG_BAD_PAYLOAD, name, exc)
                else:
                    log.warning(msg.LOG_TRANSIENT, name, exc, delay.total_seconds(), failures)
                self._failed(name, status="backing_off", retry_at=now + delay, error=str(exc), notify=False)
                outcome.status = "bad_payload" if isinstance(exc, BadPayload) else "transient"
                return outcome
            result = pipeline.ingest(
                self.engine, source=name, batch=fetched.mentions, cursor=fetched.cursor, ruleset=self.ruleset,
                now=self.clock.now(), policies=self.policies, dry_run=self.dry_run)
            outcome.results.append(result)
            log.info(msg.LOG_POLL, name, result.fetched, result.stored, result.duplicates, result.cases_opened,
                     result.attached, result.alerts)
            self._succeeded(name, fetched, binding=binding)
            if result.stored:
                self._wake_outbox()  # alerts go out now, not at the outbox job's next tick
            if not fetched.more:
                break
        return outcome

    def ingest_pushed(self, name: str, mentions: list[Any]) -> IngestResult:
        """Mentions a platform pushed (Facebook webhooks): the same pipeline as a poll, but the
        source's cursor stays where polling left it, so polling still reads (and drops) them."""
        result = pipeline.ingest(self.engine, source=name, batch=mentions, cursor=None, ruleset=self.ruleset,
                                 now=self.clock.now(), policies=self.policies, dry_run=self.dry_run)
        if self.metrics is not None:
            self.metrics.observe_ingest(name, self.sources[name].platform, result)
        if result.stored:
            self._wake_outbox()
        return result

    def _wake_outbox(self) -> None:
        # Under _wake_lock, and never once stopping: APScheduler 3's shutdown(wait=True) holds its job
        # store lock while it waits for running jobs, so a job calling modify_job then would deadlock.
        with self._wake_lock:
            scheduler = self.scheduler
            if scheduler is None or self._stop.is_set():
                return
            try:
                scheduler.modify_job("outbox", next_run_time=datetime.now(UTC))
            except Exception:  # the job may be gone; its next tick will deliver
                log.debug("could not wake the outbox job", exc_info=True)

    def _deliver_job(self) -> None:
        """Deliver until nothing is due: a wake-up that arrives while this job runs is not lost."""
        for _ in range(20):
            stats = self.deliver()
            if self._stop.is_set() or stats.sent + stats.failed + stats.unknown == 0:
                return

    def deliver(self, *, limit: int = 50) -> outbox.DeliveryStats:
        stats = self.deliverer.run_once(now=self.clock.now(), limit=limit, should_stop=self._stop.is_set)
        if self.metrics is not None and stats.alerts_posted:
            self.metrics.observe_alert(stats.alerts_posted)
        return stats

    def sweep(self) -> sla.SweepResult:
        now = self.clock.now()
        result = sla.sweep(self.engine, ruleset=self.ruleset, now=now)
        self._digest_if_due(now)
        trim_memory()  # every 15 s: cheap (a few ms), and what a burst left behind goes back
        if self.metrics is not None:
            self.metrics.observe_breaches(result.breached)
            self.metrics.refresh(self.engine)
            self.metrics.mark_scheduler_alive(now)
        return result

    def _digest_if_due(self, now: datetime) -> None:
        from monitor.report import digest

        if self.ruleset.digest is None:
            return
        previous = digest.last_sent(self.engine)
        if previous is None:
            digest.start_counting(self.engine, now=now)
            return
        if not digest.digest_due(ruleset=self.ruleset, last_sent=previous, now=now):
            return
        try:
            digest.post_digest(engine=self.engine, notifier=self.notifier, ruleset=self.ruleset, now=now)
        except ConnectorError as exc:  # the claim was given back: the next sweep tries again
            log.warning("weekly digest not posted: %s", exc)

    def reload_rules(self) -> bool:
        """Apply an edited rules.yaml; a bad edit is refused and the last good rules stay."""
        digest = _digest(self.rules_path)
        if digest == self._rules_digest or digest == self._refused_digest:
            return False
        try:
            fresh = load_rules(self.rules_path)
        except RulesError as exc:
            self._refused_digest = digest
            shown, more = exc.errors[:OPS_RULES_ERRORS], len(exc.errors) - OPS_RULES_ERRORS
            log.error(msg.LOG_RULES_REFUSED, "\n".join(shown) + (msg.RULES_MORE_ERRORS.format(count=more) if more > 0 else ""))
            with transaction(self.engine) as s:  # the words and escaping are the notifier's, at delivery
                self._ops_in(s, f"rules:{digest}", "", payload=notes.RulesRefused(errors=list(shown),
                                                                                    more=max(more, 0)).payload())
            return False
        self.ruleset = fresh
        self._rules_digest = digest
        self._refused_digest = ""
        log.info(msg.OPS_RULES_RELOADED.format(rules=len(fresh.rules), sources=len(fresh.sources)))
        return True

    def drain(self, *, max_rounds: int = 50) -> None:
        """Deliver until nothing is due now (used by --once and the tests)."""
        for _ in range(max_rounds):
            stats = self.deliver(limit=200)
            if stats.sent + stats.failed + stats.unknown + stats.retried == 0:
                return
            if stats.sent + stats.failed + stats.unknown == 0:
                return  # only retries left: they are due later

    def catch_up_summary(self) -> str:
        """After `run --once`: how many Slack messages wait in the outbox ("" when none).  A catch-up
        delivers what Slack's pace allows and leaves the rest queued; it never sleeps it off."""
        left = outbox.backlog(self.engine)
        return msg.CLI_ONCE_LEFT.format(count=f"{left:,}") if left else ""

    def run_once(self) -> list[PollOutcome]:
        outcomes = []
        for name in self.sources:
            for _ in range(1000):  # a long backlog drains over several polls
                outcome = self.poll(name)
                self.drain()
                if outcome.status != "ok" or len(outcome.results) < MAX_PAGES_PER_POLL:
                    break
            outcomes.append(outcome)
        self.sweep()
        self.drain()
        return outcomes

    # ------------------------------------------------------------------ scheduling

    def start(self) -> None:
        from monitor.triage import warm_up

        # Models and lexicons load once, here: the poll threads' first pages would otherwise each
        # build their own copy (functools.cache does not lock; jieba's dictionary alone is ~70 MB).
        warm_up()
        # One worker per job that can run at once (each source's poll, outbox, SLA sweep, rules,
        # heartbeat): APScheduler's default of 10 threads only adds idle stacks and malloc arenas.
        workers = len(self.sources) + 4
        scheduler = BackgroundScheduler(
            timezone="UTC", executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30})
        # Intervals are in the daemon's clock; a fast clock (run --clock-speed) polls and sweeps as
        # often in its own time, so more often on the wall clock (never more than once a second).
        speed = self.clock.speed

        def wall(seconds: float) -> float:
            return max(1.0, seconds / speed)

        for name, binding in self.sources.items():
            seconds = wall(binding.every.total_seconds())
            scheduler.add_job(self._guard(self.poll, name), "interval", seconds=seconds, id=f"poll:{name}",
                              jitter=min(5.0, seconds * 0.1), next_run_time=datetime.now(UTC))
        scheduler.add_job(self._guard(self._deliver_job), "interval", seconds=1, id="outbox")
        scheduler.add_job(self._guard(self.sweep), "interval", seconds=wall(SWEEP_EVERY_S), id="sla")
        scheduler.add_job(self._guard(self.reload_rules), "interval", seconds=2, id="rules")
        scheduler.add_job(self._guard(self.heartbeat), "interval", seconds=wall(self.lease_ttl.total_seconds() / 3),
                          id="heartbeat")
        self._announce(self.clock.now(), ttl=self.lease_ttl)  # before the first poll, so it takes only its share
        scheduler.start()
        self.scheduler = scheduler

    def stop(self) -> None:
        """Let running jobs finish their transaction, then stop."""
        with self._wake_lock:  # once we hold it, no job can be inside modify_job or enter it
            self._stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        try:  # hand our sources to the other replicas now rather than when the leases expire
            now = self.clock.now()
            self._announce(now, ttl=timedelta(0))
            for name in self.sources:
                # An expiry of "now" rather than store.release_lease: acquire_lease cannot take a
                # released lease (expires_at NULL never compares < now), so a restart would never poll.
                acquire_lease(self.engine, name=f"source:{name}", holder=self.worker, ttl=timedelta(0), now=now)
        except Exception:  # the database may be what is failing; the leases then expire on their own
            log.warning("could not release the source leases on stop", exc_info=True)

    def heartbeat(self) -> None:
        """Renew our leases between polls too (a source polled less often than LEASE_TTL must not pass
        to another replica while its holder lives), and take over those a dead replica let expire."""
        now = self.clock.now()
        self._announce(now, ttl=self.lease_ttl)
        for name in self.sources:
            if self._may_hold(name, now=now):
                acquire_lease(self.engine, name=f"source:{name}", holder=self.worker, ttl=self.lease_ttl, now=now)
            elif name in self._held(now):  # over our share since another replica started: hand it over
                release_lease(self.engine, name=f"source:{name}", holder=self.worker)

    def _announce(self, now: datetime, *, ttl: timedelta) -> None:
        """Replicas (PostgreSQL) hold a presence lease, so that each counts the others and takes only its share."""
        if is_postgres(self.engine):
            acquire_lease(self.engine, name=f"replica:{self.worker}", holder=self.worker, ttl=ttl, now=now)

    def _held(self, now: datetime) -> list[str]:
        prefix = "source:"
        return sorted(n.removeprefix(prefix) for n, holder in live_leases(self.engine, prefix=prefix, now=now)
                      if holder == self.worker and n.removeprefix(prefix) in self.sources)

    def _may_hold(self, name: str, *, now: datetime) -> bool:
        """Whether this replica may (keep) poll(ing) `name`: with N live replicas each takes at most
        ceil(sources / N); the sources it holds beyond that go back for the others to take."""
        if not is_postgres(self.engine):
            return True  # SQLite: one process
        replicas = {holder for _, holder in live_leases(self.engine, prefix="replica:", now=now)} | {self.worker}
        share = -(-len(self.sources) // len(replicas))
        mine = self._held(now)
        if name in mine:
            return mine.index(name) < share
        return len(mine) < share

    def request_stop(self) -> None:
        """Ask the running daemon to stop (signal handlers); `wait` then returns."""
        self._stop.set()

    def wait(self) -> None:
        while not self._stop.wait(0.5):
            pass

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Callable[[], None]:
        def job() -> None:
            try:
                fn(*args)
            except OperationalError as exc:  # the database is away: one line per outage, the job runs again next tick
                self._database_failed(exc)
            except Exception:  # a job must never kill the scheduler; it runs again next tick
                log.exception("job %s%s failed", getattr(fn, "__name__", fn), args)

        return job

    # ------------------------------------------------------------------ health

    def _database_failed(self, exc: OperationalError) -> None:
        with self._database_lock:
            first = self._database_down_since is None
            if first:
                self._database_down_since = self.clock.now()
        if first:
            reason = str(exc.orig or exc).splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
            log.error(msg.LOG_DATABASE_UNAVAILABLE, reason)
        if self.metrics is not None:
            self.metrics.set_database_ok(False)

    def _database_ok(self) -> None:
        with self._database_lock:
            since, self._database_down_since = self._database_down_since, None
        if since is not None:
            log.warning(msg.LOG_DATABASE_BACK, humanize(self.clock.now() - since))
        if self.metrics is not None:
            self.metrics.set_database_ok(True)

    @property
    def database_down_since(self) -> datetime | None:
        """When the database stopped taking writes, while it does not (None: it does)."""
        return self._database_down_since

    def _health(self, name: str) -> SourceHealth:
        with transaction(self.engine) as s:
            return s.get(SourceHealth, name) or SourceHealth(source=name)

    def _failed(self, name: str, *, status: str, retry_at: datetime | None, error: str, notify: bool,
                env: str = "") -> None:
        now = self.clock.now()
        with transaction(self.engine) as s:
            health = s.get(SourceHealth, name) or SourceHealth(source=name, last_success_at=now)
            health.status = status
            health.retry_at = retry_at
            health.failures += 1
            health.last_error = error[:300]
            s.add(health)
            since = health.last_success_at or now
            long_outage = now - since >= OUTAGE_NOTICE_AFTER and status != "rate_limited"
            if (notify or long_outage) and not health.operator_notified:
                health.operator_notified = True
                text = (msg.OPS_AUTH_FAILED.format(source=name, reason=error, env=env or "the environment",
                                                   probe=_mins(retry_at - now) if retry_at else "")
                        if status == "auth_failed" else
                        msg.OPS_OUTAGE.format(source=name, duration=_mins(now - since), reason=error))
                self._ops_in(s, f"ops:{name}:{since.isoformat()}", text)

    def _succeeded(self, name: str, fetched: FetchResult, *, binding: SourceBinding) -> None:
        now = self.clock.now()
        with transaction(self.engine) as s:
            health = s.get(SourceHealth, name) or SourceHealth(source=name)
            if health.operator_notified:
                since = health.last_success_at or now
                self._ops_in(s, f"ops:{name}:recovered:{now.isoformat()}",
                             msg.OPS_RECOVERED.format(source=name, duration=_mins(now - since)))
            health.status = "ok"
            health.failures = 0
            health.operator_notified = False
            health.last_success_at = now
            health.last_error = ""
            health.reads += fetched.reads
            health.retry_at = self._paced(binding, fetched, now=now)
            if fetched.quota.remaining is not None:
                health.quota_remaining = fetched.quota.remaining
                health.quota_limit = fetched.quota.limit
                health.quota_reset_at = fetched.quota.reset_at
            if fetched.gap_possible:
                self._ops_in(s, f"gap:{name}:{now.date().isoformat()}", msg.OPS_GAP.format(source=name))
            s.add(health)

    def _paced(self, binding: SourceBinding, fetched: FetchResult, *, now: datetime) -> datetime | None:
        """Spread what is left of the rate-limit window over the time until it resets."""
        quota = fetched.quota
        if quota.remaining is None or quota.reset_at is None or fetched.more:
            return None
        until_reset = (quota.reset_at - now).total_seconds()
        if until_reset <= 0:
            return None
        spacing = until_reset / max(quota.remaining, 1)
        if spacing <= binding.every.total_seconds():
            return None
        return now + timedelta(seconds=spacing)

    def _ops(self, key: str, text: str) -> None:
        with transaction(self.engine) as s:
            self._ops_in(s, key, text)

    def _ops_in(self, s: Any, key: str, text: str, *, payload: dict[str, Any] | None = None) -> None:
        channel = self.ruleset.channels.get("ops")
        if not channel:
            log.warning("%s", text or payload)
            return
        outbox.add(s, kind=OutboxKind.CHANNEL, dedup_key=key, target=channel, now=self.clock.now(),
                   payload=payload or notes.Text(text=text).payload())

    def _release_orphan_claims(self) -> None:
        """With SQLite only this process writes: rows left `sending` by a killed run are orphans."""
        with transaction(self.engine) as s:
            for row in s.exec(select(Outbox).where(Outbox.state == OutboxState.SENDING)).all():
                row.claimed_until = self.clock.now() - timedelta(seconds=1)
                s.add(row)


OPS_RULES_ERRORS = 20  # a refused edit lists this many errors in #cs-ops, then a count (check-rules shows all)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def _mins(delta: timedelta) -> str:
    return humanize(delta)
