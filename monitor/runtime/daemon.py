"""The daemon's schedule: APScheduler jobs for each source's poll, the outbox, the SLA sweep (with the
digest), rules hot reload and the lease heartbeat; and the database's health as the jobs see it.

What one poll does (leases, SourceHealth, back-off, rate-limit holds) is monitor/runtime/poller.py's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from connectors.base import Notifier, Source
from monitor import messages as msg
from monitor.cases import sla
from monitor.cases.acknowledge import ReplyDeliverer
from monitor.cases.pipeline import IngestResult, ReplyPolicy
from monitor.clock import Clock
from monitor.delivery import notes, outbox
from monitor.delivery.notes import humanize
from monitor.model import NewMention, Outbox, OutboxState, SourceHealth
from monitor.report import digest
from monitor.rules import RulesError, load_rules
from monitor.rules.schema import Ruleset
from monitor.runtime.memory import IdleTrim, trim_memory
from monitor.runtime.poller import (
    LEASE_TTL,
    MAX_PAGES_PER_POLL,
    PollOutcome,
    SourceBinding,
    SourcePoller,
    queue_ops_note,
)
from monitor.store import is_postgres, release_idle_connections, transaction

if TYPE_CHECKING:
    from monitor.runtime.metrics import Metrics

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 15.0  # the SLA sweep, in the daemon's clock


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
            claim_ttl=claim_ttl, ops_channel=lambda: self.ruleset.channels.get("ops", ""),
            digests=lambda due: digest.compose(engine=self.engine, ruleset=self.ruleset, due=due))
        self._stop = threading.Event()
        self.poller = SourcePoller(
            engine=engine, sources=self.sources, clock=self.clock, worker=self.worker, rules=lambda: self.ruleset,
            policies=lambda: self.policies, dry_run=dry_run, stop=self._stop, lease_ttl=lease_ttl,
            on_stored=self._wake_outbox)  # alerts go out now, not at the outbox job's next tick
        self._rules_digest = _digest(self.rules_path)
        self._refused_digest = ""
        self._wake_lock = threading.Lock()
        self._database_down_since: datetime | None = None  # the first failure of the current outage
        self._database_lock = threading.Lock()
        self._idle_trim = IdleTrim(on_idle=self._let_go)
        self.scheduler: BackgroundScheduler | None = None
        self.metrics: Metrics | None = None  # set when a metrics port is configured
        if not is_postgres(engine):
            self._release_orphan_claims()

    # ------------------------------------------------------------------ one step each

    def poll(self, name: str) -> PollOutcome:
        try:
            outcome = self.poller.poll(name)
            self._database_ok()
        except OperationalError as exc:
            # Nothing of this page was stored and the cursor did not move (one transaction): the next
            # poll fetches the same mentions again, so a database outage loses none.
            self._database_failed(exc)
            outcome = PollOutcome(name, "database_unavailable")
        if any(result.stored for result in outcome.results):
            self._idle_trim.worked(f"poll:{name}")
        else:  # nothing new (a page of mentions already stored: Messenger's conversations are read again
            # each poll), or nothing asked: a source held back (its quota spread over the window, a rate
            # limit, a back-off, another replica's lease) has no work in hand either.  Waiting for a poll
            # that fetched nothing kept a burst's caches and heap (x-own paced at 90 s, fb-messages)
            self._idle_trim.nothing_to_do(f"poll:{name}")
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

    def ingest_pushed(self, name: str, mentions: list[NewMention]) -> IngestResult:
        """Mentions a platform pushed (Facebook webhooks): the same pipeline as a poll, but the
        source's cursor stays where polling left it, so polling still reads (and drops) them."""
        result = self.poller.ingest(name, mentions, cursor=None)
        if self.metrics is not None:
            self.metrics.observe_ingest(name, self.sources[name].platform, result)
        return result

    def _let_go(self) -> None:
        """What the engine holds for a burst, once idle: SQLAlchemy's compiled statements (compiled
        again by the next burst, ~20 ms of CPU on its first page) and SQLite's idle connections."""
        self.engine.clear_compiled_cache()
        release_idle_connections(self.engine)

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
            if stats.sent + stats.failed + stats.unknown + stats.retried:
                self._idle_trim.worked("outbox")
            else:
                self._idle_trim.nothing_to_do("outbox")
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
        """Queue the period's digest once (an outbox row, delivered with the DELIVERIES back-off)."""
        if self.ruleset.digest is None:
            return
        if digest.last_sent(self.engine) is None:
            digest.start_counting(self.engine, now=now)
            return
        if digest.queue_digest(self.engine, ruleset=self.ruleset, now=now):
            self._wake_outbox()

    def reload_rules(self) -> bool:
        """Apply an edited rules.yaml; a bad edit is refused and the last good rules stay."""
        fingerprint = _digest(self.rules_path)
        if fingerprint in (self._rules_digest, self._refused_digest):
            return False
        try:
            fresh = load_rules(self.rules_path)
        except RulesError as exc:
            self._refused_digest = fingerprint
            shown, more = exc.errors[:OPS_RULES_ERRORS], len(exc.errors) - OPS_RULES_ERRORS
            log.error(msg.LOG_RULES_REFUSED, "\n".join(shown) + (msg.RULES_MORE_ERRORS.format(count=more) if more > 0 else ""))
            with transaction(self.engine) as s:  # the words and escaping are the notifier's, at delivery
                queue_ops_note(s, channel=self.ruleset.channels.get("ops", ""), key=f"rules:{fingerprint}", text="",
                               now=self.clock.now(),
                               payload=notes.RulesRefused(errors=list(shown), more=max(more, 0)).payload())
            return False
        self.ruleset = fresh
        self._rules_digest = fingerprint
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

        # The public holidays come from a child process (monitor.rules.business_hours): asked while
        # the models load, not by the first poll's first case.
        calendar = threading.Thread(target=self._holidays_of_this_year, name="holidays", daemon=True)
        calendar.start()
        # Models and lexicons load once, here: the poll threads' first pages would otherwise each
        # build their own copy (functools.cache does not lock; jieba's dictionary alone is ~70 MB).
        warm_up()
        calendar.join()
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
        self.poller.announce(self.clock.now(), ttl=self.lease_ttl)  # before the first poll, so it takes only its share
        scheduler.start()
        self.scheduler = scheduler

    def _holidays_of_this_year(self) -> None:
        hours = self.ruleset.business_hours
        try:
            hours.is_holiday(self.clock.now().astimezone(hours.tz).date())
        except Exception:  # asked again, and reported, by the first deadline that needs it
            log.debug("could not read the public holidays at start", exc_info=True)

    def stop(self) -> None:
        """Let running jobs finish their transaction, then stop."""
        with self._wake_lock:  # once we hold it, no job can be inside modify_job or enter it
            self._stop.set()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        try:  # hand our sources to the other replicas now rather than when the leases expire
            self.poller.hand_over(self.clock.now())
        except Exception:  # the database may be what is failing; the leases then expire on their own
            log.warning("could not release the source leases on stop", exc_info=True)

    def heartbeat(self) -> None:
        """Renew our leases between polls, take over expired ones, hand over what is beyond our share."""
        self.poller.renew(self.clock.now())

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
        return self.poller.health(name)

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
