"""Polling one source: its lease, its health (SourceHealth), back-off and rate-limit holds.

A rate-limited source waits for the reset the platform announced, kept in its SourceHealth row,
so another replica or a restarted process waits too instead of collecting another 429; transient
failures back off as the SOURCES policy of monitor/retry.py says; a rejected token pauses the
source, tells the operator once and is probed again on the AUTH_PROBES back-off.  The scheduling
of these polls is monitor/runtime/daemon.py's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from connectors.base import AuthFailed, BadPayload, FetchResult, RateLimited, Source, Transient
from monitor import messages as msg
from monitor.cases import pipeline
from monitor.cases.pipeline import IngestResult, ReplyPolicy
from monitor.clock import Clock
from monitor.delivery import notes, outbox
from monitor.delivery.notes import humanize
from monitor.model import NewMention, OutboxKind, SourceHealth
from monitor.retry import AUTH_PROBES, SOURCES
from monitor.rules.schema import Ruleset
from monitor.settings import Settings
from monitor.store import acquire_lease, get_cursor, is_postgres, live_leases, release_lease, transaction

# The poll lines keep the logger name they always had: operators filter and alert on it.
log = logging.getLogger("monitor.runtime.daemon")

MAX_PAGES_PER_POLL = 20  # drain a backlog page by page, but let other jobs run in between
OUTAGE_NOTICE_AFTER = timedelta(minutes=10)
# A replica that dies loses its sources after this long: Settings.lease_ttl (MENTION_MONITOR_LEASE_TTL)
# sets it for a daemon (monitor/runtime/wiring.py); this is that setting's default.
LEASE_TTL = timedelta(seconds=Settings.model_fields["lease_ttl"].default)


@dataclass(slots=True)
class SourceBinding:
    """A source from rules.yaml and the connector that serves it."""

    name: str
    platform: str
    kind: str
    query: str
    every: timedelta
    connector: Source
    secret_env: str = ""  # which variable to fix when its token is rejected


@dataclass(slots=True)
class PollOutcome:
    source: str
    status: str  # ok | skipped | rate_limited | transient | auth_failed | bad_payload | database_unavailable
    results: list[IngestResult] = field(default_factory=list)


def queue_ops_note(s: Session, *, channel: str, key: str, text: str, now: datetime,
                   payload: dict[str, object] | None = None) -> None:
    """A message for the operators (#cs-ops), as an outbox row; only logged when no ops channel is set."""
    if not channel:
        log.warning("%s", text or payload)
        return
    outbox.add(s, kind=OutboxKind.CHANNEL, dedup_key=key, target=channel, now=now,
               payload=payload or notes.Text(text=text).payload())


class SourcePoller:
    """Polls the sources this replica may hold, one page after another, and keeps their health."""

    def __init__(
        self, *, engine: Engine, sources: Mapping[str, SourceBinding], clock: Clock, worker: str,
        rules: Callable[[], Ruleset], policies: Callable[[], Mapping[str, ReplyPolicy]], dry_run: bool,
        stop: threading.Event, lease_ttl: timedelta = LEASE_TTL,
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.sources = sources
        self.clock = clock
        self.worker = worker
        self.rules = rules  # the rules in force (a hot reload replaces them)
        self.policies = policies
        self.dry_run = dry_run
        self.lease_ttl = lease_ttl
        self.on_stored = on_stored  # new mentions were stored: their alerts may go out now
        self._stop = stop
        self._unprobed = set(sources)  # sources not polled since this process started

    # ------------------------------------------------------------------ one poll

    def poll(self, name: str) -> PollOutcome:
        binding = self.sources[name]
        now = self.clock.now()
        if not self.may_hold(name, now=now) or \
                not acquire_lease(self.engine, name=f"source:{name}", holder=self.worker, ttl=self.lease_ttl, now=now):
            return PollOutcome(name, "skipped")
        health = self.health(name)
        # A rejected token is probed again on a back-off, and at once after a restart (which is
        # when an operator has set a fresh one): it never stops a source for good.  A rate limit's
        # hold is kept across restarts and replicas: the platform's reset time has not moved.
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
            result = self.ingest(name, fetched.mentions, cursor=fetched.cursor)
            outcome.results.append(result)
            log.info(msg.LOG_POLL, name, result.fetched, result.stored, result.duplicates, result.cases_opened,
                     result.attached, result.alerts)
            self._succeeded(name, fetched, binding=binding)
            if not fetched.more:
                break
        return outcome

    def ingest(self, name: str, mentions: Sequence[NewMention], *, cursor: str | None) -> IngestResult:
        """One page through the pipeline; `cursor` None leaves the source's cursor where it is (pushed mentions)."""
        result = pipeline.ingest(self.engine, source=name, batch=list(mentions), cursor=cursor, ruleset=self.rules(),
                                 now=self.clock.now(), policies=self.policies(), dry_run=self.dry_run)
        if result.stored:
            self.on_stored()
        return result

    # ------------------------------------------------------------------ leases

    def announce(self, now: datetime, *, ttl: timedelta) -> None:
        """Replicas (PostgreSQL) hold a presence lease, so that each counts the others and takes only its share."""
        if is_postgres(self.engine):
            acquire_lease(self.engine, name=f"replica:{self.worker}", holder=self.worker, ttl=ttl, now=now)

    def renew(self, now: datetime) -> None:
        """Renew our leases between polls too (a source polled less often than the lease TTL must not pass
        to another replica while its holder lives), take over those a dead replica let expire, and
        hand back those over our share since another replica started."""
        self.announce(now, ttl=self.lease_ttl)
        for name in self.sources:
            if self.may_hold(name, now=now):
                acquire_lease(self.engine, name=f"source:{name}", holder=self.worker, ttl=self.lease_ttl, now=now)
            elif name in self.held(now):
                release_lease(self.engine, name=f"source:{name}", holder=self.worker)

    def hand_over(self, now: datetime) -> None:
        """On stop: our sources go to the other replicas now rather than when the leases expire."""
        self.announce(now, ttl=timedelta(0))
        for name in self.sources:
            # An expiry of "now" rather than store.release_lease: acquire_lease cannot take a
            # released lease (expires_at NULL never compares < now), so a restart would never poll.
            acquire_lease(self.engine, name=f"source:{name}", holder=self.worker, ttl=timedelta(0), now=now)

    def held(self, now: datetime) -> list[str]:
        prefix = "source:"
        return sorted(n.removeprefix(prefix) for n, holder in live_leases(self.engine, prefix=prefix, now=now)
                      if holder == self.worker and n.removeprefix(prefix) in self.sources)

    def may_hold(self, name: str, *, now: datetime) -> bool:
        """Whether this replica may (keep) poll(ing) `name`: with N live replicas each takes at most
        ceil(sources / N); the sources it holds beyond that go back for the others to take."""
        if not is_postgres(self.engine):
            return True  # SQLite: one process
        replicas = {holder for _, holder in live_leases(self.engine, prefix="replica:", now=now)} | {self.worker}
        share = -(-len(self.sources) // len(replicas))
        mine = self.held(now)
        if name in mine:
            return mine.index(name) < share
        return len(mine) < share

    # ------------------------------------------------------------------ health

    def health(self, name: str) -> SourceHealth:
        with transaction(self.engine) as s:
            return s.get(SourceHealth, name) or SourceHealth(source=name)

    def _ops_in(self, s: Session, key: str, text: str) -> None:
        queue_ops_note(s, channel=self.rules().channels.get("ops", ""), key=key, text=text, now=self.clock.now())

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
                                                   probe=humanize(retry_at - now) if retry_at else "")
                        if status == "auth_failed" else
                        msg.OPS_OUTAGE.format(source=name, duration=humanize(now - since), reason=error))
                self._ops_in(s, f"ops:{name}:{since.isoformat()}", text)

    def _succeeded(self, name: str, fetched: FetchResult, *, binding: SourceBinding) -> None:
        now = self.clock.now()
        with transaction(self.engine) as s:
            health = s.get(SourceHealth, name) or SourceHealth(source=name)
            if health.operator_notified:
                since = health.last_success_at or now
                self._ops_in(s, f"ops:{name}:recovered:{now.isoformat()}",
                             msg.OPS_RECOVERED.format(source=name, duration=humanize(now - since)))
            health.status = "ok"
            health.failures = 0
            health.operator_notified = False
            health.last_success_at = now
            health.last_error = ""
            health.reads += fetched.reads
            health.retry_at = _paced(binding, fetched, now=now)
            if fetched.quota.remaining is not None:
                health.quota_remaining = fetched.quota.remaining
                health.quota_limit = fetched.quota.limit
                health.quota_reset_at = fetched.quota.reset_at
            if fetched.gap_possible:
                self._ops_in(s, f"gap:{name}:{now.date().isoformat()}", msg.OPS_GAP.format(source=name))
            s.add(health)


def _paced(binding: SourceBinding, fetched: FetchResult, *, now: datetime) -> datetime | None:
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
