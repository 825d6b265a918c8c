"""The outbox: every side effect is a row first, then a delivery.

Slack messages are at-least-once with dedup by case (an alert whose outcome is
unknown after a crash is looked up by its metadata before it is posted again).
Public replies are at-most-once: pending -> sending is committed BEFORE the
platform call, and a row found in `sending` after a crash is reconciled against
the platform, never blindly re-posted (monitor/cases/acknowledge.py).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.base import (
    AuthFailed,
    BadPayload,
    ConnectorError,
    Notifier,
    RateLimited,
    Refused,
    Source,
    Transient,
)
from monitor import messages as msg
from monitor.delivery.notes import compose
from monitor.model import (
    PUBLIC_KINDS,
    Case,
    CaseState,
    Event,
    Mention,
    Outbox,
    OutboxKind,
    OutboxState,
    SourceHealth,
)
from monitor.retry import DELIVERIES
from monitor.settings import Settings
from monitor.store import execute_many, insert_for, is_postgres, transaction
from monitor.views import OpenCaseLine, ThreadLine, build_view

log = logging.getLogger(__name__)

# Longer than any client timeout: a live claim is never stolen.  Settings.claim_ttl
# (MENTION_MONITOR_CLAIM_TTL) sets it for a daemon; this is that setting's default.
CLAIM_TTL = timedelta(seconds=Settings.model_fields["claim_ttl"].default)
MALFORMED_ATTEMPTS = 5
REPLIES_PER_PASS = 10  # platform replies one delivery pass makes before it hands the rest back  # a Slack answer we cannot read is retried this often before the row fails
ALERT_METADATA = "mm_alert"


ACK_PREFIX = "ack:"  # dedup keys of acknowledgements (monitor.cases.acknowledge.ack_key)
MEMBER_PREFIX = "member:"  # a grouped case's line in its group's thread (monitor.cases.pipeline)
PRIORITY_PREFIX = "spike:"  # dedup keys of rows delivered before everything else (monitor.cases.sla._spike)
_BATCH = "mm_outbox_batch"  # Session.info key of the open Batch
_INSERT_EVENTS = sa.insert(Event.__table__)  # type: ignore[arg-type]


@dataclass(slots=True)
class Batch:
    """Outbox rows queued inside one ingest transaction, written by `flush_batch` with one statement
    per kind instead of one round trip (and one ORM autoflush) per row.

    Every key an ingest queues names something new in that transaction (a new case, a new mention),
    except the acknowledgement key, which names (platform, conversation, author): a case is opened
    only when no case of that triple exists, and acknowledgements belong to cases, so that key is
    new too.  The flush still says ON CONFLICT DO NOTHING, so a race between replicas can never
    queue a second acknowledgement."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (platform, author_id) -> when the newest acknowledgement to them was queued; for the authors
    # in `known_authors`, read once per page by monitor.cases.acknowledge.prefetch_recent_acks
    last_ack: dict[tuple[str, str], datetime] = field(default_factory=dict)
    known_authors: set[tuple[str, str]] = field(default_factory=set)
    # the page's case events (`add_event`), written in order with one statement: the same ids, in the
    # same order, as ORM objects added one by one, without building and flushing an object each
    events: list[dict[str, Any]] = field(default_factory=list)


def begin_batch(session: Session) -> Batch:
    batch = Batch()
    session.info[_BATCH] = batch
    return batch


def current_batch(session: Session) -> Batch | None:
    return session.info.get(_BATCH)


def flush_batch(session: Session) -> None:
    batch = session.info.pop(_BATCH, None)
    if batch is None:
        return
    if batch.rows:
        execute_many(session, _statement(session, "add_many"), list(batch.rows.values()))
    if batch.updates:
        execute_many(session, _statement(session, "update"), list(batch.updates.values()))
    if batch.events:
        execute_many(session, _INSERT_EVENTS, batch.events)


def add_event(
    session: Session, *, case_id: int, at: datetime, kind: str, detail: dict[str, Any], actor: str = ""
) -> None:
    """Add to a case's timeline; inside an ingest, written with the page's outbox rows."""
    batch = current_batch(session)
    if batch is None:
        session.add(Event(case_id=case_id, at=at, kind=kind, actor=actor, detail=detail))
        return
    batch.events.append({"case_id": case_id, "at": at, "kind": kind, "actor": actor, "detail": detail})


def add(
    session: Session, *, kind: str, dedup_key: str, target: str, payload: dict[str, Any], now: datetime,
    case_id: int | None = None, mention_id: int | None = None, platform: str = "slack", author_id: str = "",
) -> bool:
    """Queue a side effect unless one with the same dedup key exists; True if queued."""
    batch = current_batch(session)
    if batch is not None and dedup_key in batch.rows:
        return False  # queued already in this ingest (a group's line is offered once per member)
    params = dict(
        kind=str(kind), dedup_key=dedup_key, case_id=case_id, mention_id=mention_id, platform=platform,
        author_id=author_id,
        target=target, payload=payload, state=OutboxState.PENDING.value, attempts=0, created_at=now,
        next_attempt_at=now, claimed_by="", sent_at=None, result={}, error="",
    )
    if batch is not None:
        batch.rows[dedup_key] = params
        if dedup_key.startswith(ACK_PREFIX) and kind in PUBLIC_KINDS:
            batch.last_ack[(platform, author_id)] = now
        return True
    # RETURNING, not rowcount: drivers disagree on rowcount for INSERT .. ON CONFLICT
    return session.execute(_statement(session, "add"), params).first() is not None


def request_update(session: Session, *, case_id: int, channel: str, now: datetime) -> None:
    """Ask for the case's Slack alert to be re-rendered.  One row per case, reused: many
    changes between two deliveries cost one chat.update."""
    params = dict(
        kind=OutboxKind.ALERT_UPDATE.value, dedup_key=f"update:{case_id}", case_id=case_id, platform="slack",
        target=channel, payload={"case_id": case_id}, state=OutboxState.PENDING.value, attempts=0,
        created_at=now, next_attempt_at=now, claimed_by="", result={}, error="",
    )
    batch = current_batch(session)
    if batch is not None:  # one row per key: PostgreSQL refuses to upsert a row twice in one statement
        batch.updates[params["dedup_key"]] = params
        return
    session.execute(_statement(session, "update"), params)


# Built once per dialect and executed with parameters: building an INSERT with .values() per call
# cost more than running it (bench/throughput.py profile).
_STATEMENTS: dict[tuple[str, str], Any] = {}


def _statement(session: Session, which: str) -> Any:
    dialect = session.get_bind().dialect.name
    stmt = _STATEMENTS.get((dialect, which))
    if stmt is not None:
        return stmt
    table = Outbox.__table__
    insert = insert_for(session)(table)
    if which == "add":
        stmt = insert.on_conflict_do_nothing(index_elements=["dedup_key"]).returning(table.c.id)
    elif which == "add_many":
        stmt = insert.on_conflict_do_nothing(index_elements=["dedup_key"])
    else:
        stmt = insert.on_conflict_do_update(
            index_elements=["dedup_key"],
            set_={"state": OutboxState.PENDING.value, "next_attempt_at": insert.excluded.next_attempt_at,
                  "claimed_by": "", "attempts": 0},
        )
    _STATEMENTS[(dialect, which)] = stmt
    return stmt


@dataclass(slots=True)
class Claimed:
    row: Outbox
    recovering: bool  # it was found in `sending` with an expired claim: the last attempt's outcome is unknown


def claim(engine: Engine, *, worker: str, now: datetime, limit: int = 50, ttl: timedelta = CLAIM_TTL) -> list[Claimed]:
    """Take due rows for this worker.  On PostgreSQL, replicas skip each other's locked rows."""
    with transaction(engine) as s:
        due = sa.or_(
            sa.and_(Outbox.state == OutboxState.PENDING, Outbox.next_attempt_at <= now),
            sa.and_(Outbox.state == OutboxState.SENDING, Outbox.claimed_until < now),
        )
        # Alerts first: a new case's alert must not wait behind the replies and thread notes of
        # the same poll (bench/latency.py); the notes need the alert's ts anyway.
        # A spike alert jumps the queue: it says what a storm is about, ahead of the storm's own lines.
        # Then what makes a case visible (its alert, its line in a group's thread), then the other
        # thread notes, then the rest: a channel takes about one message a second, and in a storm
        # every case must reach Slack before the notes about cases already there.
        priority = sa.case((Outbox.dedup_key.startswith(PRIORITY_PREFIX), 0),
                           (Outbox.kind == OutboxKind.ALERT.value, 1),
                           (Outbox.dedup_key.startswith(MEMBER_PREFIX), 2),
                           (Outbox.kind == OutboxKind.THREAD.value, 3), else_=4)
        query = select(Outbox).where(due).order_by(priority, Outbox.id).limit(limit)
        if is_postgres(engine):
            query = query.with_for_update(skip_locked=True)
        rows = s.exec(query).all()
        claimed = []
        for row in rows:
            claimed.append(Claimed(row=row, recovering=row.state == OutboxState.SENDING))
            row.state = OutboxState.SENDING
            row.claimed_by = worker
            row.claimed_until = now + ttl
            row.attempts += 1
            s.add(row)
    return claimed


def finish(
    engine: Engine, row: Outbox, *, worker: str, now: datetime, state: OutboxState,
    result: dict[str, Any] | None = None, error: str = "", retry_at: datetime | None = None,
    also: Callable[[Session], None] | None = None, payload: dict[str, Any] | None = None,
) -> bool:
    """Record a delivery's outcome, only if the row is still ours (a reused update row may have
    been asked for again meanwhile: then it stays pending and is delivered again).  `payload` replaces
    the row's payload (a reply reworded before its next attempt)."""
    table = Outbox.__table__
    values: dict[str, Any] = {"state": state.value, "error": error[:500], "claimed_by": ""}
    if result is not None:
        values["result"] = result
    if payload is not None:
        values["payload"] = payload
    if state == OutboxState.SENT:
        values["sent_at"] = now
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    with transaction(engine) as s:
        done = s.execute(
            sa.update(table).where(table.c.id == row.id, table.c.state == OutboxState.SENDING.value,
                                   table.c.claimed_by == worker).values(**values)
        ).rowcount == 1
        if done and also is not None:
            also(s)
    return done


def finish_sent(engine: Engine, rows: list[Outbox], *, worker: str, now: datetime, result: dict[str, Any]) -> None:
    """`finish` for rows one Slack message carried: one transaction, not one commit per row."""
    table = Outbox.__table__
    with transaction(engine) as s:
        s.execute(sa.update(table).where(
            table.c.id.in_([r.id for r in rows]), table.c.state == OutboxState.SENDING.value,
            table.c.claimed_by == worker).values(state=OutboxState.SENT.value, error="", claimed_by="", result=result,
                                                 sent_at=now))


def release(engine: Engine, items: list[Claimed], *, worker: str, now: datetime,
            retry_at: datetime | None = None) -> None:
    """Give back claimed rows that were not tried.  A fresh claim becomes pending again, its attempt
    not counted; a recovering one stays `sending` with an expired claim, because whether its earlier
    attempt posted is still unknown and only the recovery path may decide."""
    table = Outbox.__table__
    fresh = [i.row.id for i in items if not i.recovering]
    recovering = [i.row.id for i in items if i.recovering]
    mine = sa.and_(table.c.state == OutboxState.SENDING.value, table.c.claimed_by == worker)
    with transaction(engine) as s:
        if fresh:
            values: dict[str, Any] = {"state": OutboxState.PENDING.value, "claimed_by": "",
                                      "attempts": table.c.attempts - 1}
            if retry_at is not None:
                values["next_attempt_at"] = retry_at
            s.execute(sa.update(table).where(table.c.id.in_(fresh), mine).values(**values))
        if recovering:
            s.execute(sa.update(table).where(table.c.id.in_(recovering), mine).values(
                claimed_until=retry_at or now - timedelta(seconds=1)))


def backoff(attempts: int) -> timedelta:
    """The wait before a delivery's next attempt, after `attempts` so far (monitor/retry.py)."""
    return DELIVERIES.delay(attempts + 1)


@dataclass(frozen=True, slots=True)
class FilesMessage:
    """Files shared as one message (the digest: its charts, under a title and a summary)."""

    title: str
    comment: str
    files: list[tuple[str, bytes]]


# A rate limit's end is kept in the database, in a SourceHealth row named after what it holds
# (status rate_limited, retry_at the hold's end): a Slack channel's 429 (Retry-After), a platform's
# reply limit.  A restarted process or another replica waits for it instead of collecting another 429.
HOLD_PREFIX = "channel:"  # + the Slack channel
REPLY_HOLD_PREFIX = "replies:"  # + platform:outbox kind (monitor.cases.acknowledge.ReplyDeliverer)


def keep_hold(engine: Engine, *, name: str, until: datetime, error: str) -> None:
    """Keep the rate-limit hold `name` until `until` (a later end already kept stays)."""
    with transaction(engine) as s:
        health = s.get(SourceHealth, name) or SourceHealth(source=name)
        if health.retry_at is None or health.retry_at < until:
            health.retry_at = until
        health.status = "rate_limited"
        health.failures += 1
        health.last_error = error[:300]
        s.add(health)


def hold_until(engine: Engine, *, name: str, now: datetime) -> datetime | None:
    """The end of the hold `name`, if it is not over at `now`."""
    with Session(engine) as s:
        health = s.get(SourceHealth, name)
    return health.retry_at if health is not None and health.retry_at is not None and health.retry_at > now else None


def channel_holds(engine: Engine, *, now: datetime) -> dict[str, datetime]:
    """channel -> the end of its rate-limit hold, for the holds not over at `now`."""
    with Session(engine) as s:
        rows = s.exec(select(SourceHealth.source, SourceHealth.retry_at).where(
            SourceHealth.source.startswith(HOLD_PREFIX), SourceHealth.retry_at > now)).all()
    return {str(name).removeprefix(HOLD_PREFIX): until for name, until in rows if until is not None}


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    alerts_posted: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class ChannelPacer:
    """Slack takes about one chat.postMessage a second per channel, short bursts allowed, and
    answers 429 beyond.  A token bucket per channel, in the daemon's own time, keeps us under it:
    a message over the budget waits in the outbox instead of costing a refused request."""

    def __init__(self, *, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, tuple[float, datetime]] = {}
        self._alias: dict[str, str] = {}  # "#name" -> the id Slack answered with, one bucket per channel

    def learn(self, asked: str, answered: str) -> None:
        if asked and answered and asked != answered:
            self._alias[asked] = answered

    def hold(self, channel: str, *, until: datetime, now: datetime) -> None:
        """Slack answered 429 for `channel`: no message there before `until` (its Retry-After).  The
        rest of the pass waits in the outbox instead of asking again, one refused request each."""
        key = self._alias.get(channel, channel)
        wait = max(0.0, (until - now).total_seconds())
        self._buckets[key] = (1 - wait * self.per_second, now)  # the bucket reaches one token at `until`

    def names(self, channel: str) -> set[str]:
        """The spellings of `channel` learnt so far ("#name" and the id Slack answered with)."""
        key = self._alias.get(channel, channel)
        return {channel, key} | {asked for asked, answered in self._alias.items() if answered == key}

    def take(self, channel: str, now: datetime) -> timedelta:
        """Zero if a message may go now (and count it), else how long to wait."""
        key = self._alias.get(channel, channel)
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, (now - stamp).total_seconds()) * self.per_second)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return timedelta(seconds=(1 - tokens) / self.per_second)
        self._buckets[key] = (tokens - 1, now)
        return timedelta(0)


# Slack counts chat.update apart from chat.postMessage: per method, per app, per workspace
# (api.slack.com/apis/rate-limits); chat.update's reference page lists Tier 3, 50+ a minute.  A paced
# notifier's edits (countdowns, grouped messages, members' lines) share this budget in one bucket.
UPDATES_PER_MINUTE = 50
UPDATE_BURST = 10
_UPDATES = "chat.update"  # the update bucket's key: one for the workspace, not one per channel


class ReplySender(Protocol):
    """Delivers one claimed platform reply at most once (monitor.cases.acknowledge.ReplyDeliverer)."""

    def deliver(self, item: Claimed, *, now: datetime) -> str:
        """ "sent", "retried", "failed" or "unknown" (the outcome cannot be known: a person decides)."""
        ...


class Deliverer:
    """Delivers due outbox rows: Slack through the notifier, platform replies through the sources."""

    def __init__(
        self, *, engine: Engine, notifier: Notifier, sources: Mapping[str, Source], worker: str,
        timezone: Callable[[], str] = lambda: "UTC", replies: ReplySender | None = None,
        claim_ttl: timedelta = CLAIM_TTL, ops_channel: Callable[[], str] = lambda: "",
        digests: Callable[[datetime], FilesMessage] | None = None,
    ) -> None:
        self.claim_ttl = claim_ttl
        self.engine = engine
        self.ops_channel = ops_channel  # where a refused alert is reported ("" : only logged)
        self.notifier = notifier
        self.sources = sources
        self.worker = worker
        self.timezone = timezone
        self.replies = replies  # for PUBLIC_KINDS
        per_second = notifier.messages_per_second  # a declared capability; None: no limit (the console)
        self.pacer = ChannelPacer(per_second=per_second, burst=notifier.burst) if per_second else None
        self.update_pacer = ChannelPacer(per_second=UPDATES_PER_MINUTE / 60, burst=UPDATE_BURST) \
            if per_second else None
        self._group_threads: set[tuple[str, str]] = set()  # (channel, ts) of grouped messages seen
        self.digests = digests  # the digest scheduled at a time, composed (monitor/report/digest.py)
        self._holds: dict[str, datetime] = {}  # channel -> end of its 429 hold, as the database keeps it
        # (row id, due, message) of a digest whose upload failed: its retry shares the same charts
        # instead of drawing them again in a child process (seconds of CPU each time)
        self._digest_draft: tuple[int, str, FilesMessage] | None = None

    def run_once(self, *, now: datetime, limit: int = 50,
                 should_stop: Callable[[], bool] = lambda: False) -> DeliveryStats:
        """Deliver one claimed batch.  When `should_stop` turns true (SIGTERM), the rows not yet tried
        are handed back at once, so that a stop never waits behind a batch of rate-limited posts.
        Thread notes of one thread in the batch go out together, several to a message."""
        stats = DeliveryStats()
        items = claim(self.engine, worker=self.worker, now=now, limit=limit, ttl=self.claim_ttl)
        if items:  # holds another process learnt (or this one, before a restart)
            self._holds = channel_holds(self.engine, now=now)
        done: set[int] = set()
        replies = 0
        paced: dict[str, datetime] = {}  # channel -> when its budget allows the next message
        waiting: dict[datetime, list[Claimed]] = {}  # rows not tried because their channel was paced
        for index, item in enumerate(items):
            if item.row.id in done:
                continue
            if item.row.kind in PUBLIC_KINDS:
                replies += 1
            if should_stop() or replies > REPLIES_PER_PASS:
                # the rest goes back: a pass of a hundred platform replies would keep the Slack rows paced
                # a second ago waiting for all of them (a storm's cases, invisible for many seconds)
                release(self.engine, [i for i in items[index:] if i.row.id not in done], worker=self.worker, now=now)
                break
            held = paced.get(item.row.target) if item.row.kind in (OutboxKind.ALERT, OutboxKind.CHANNEL) else None
            if held is not None:  # its channel's budget is spent for this pass: given back with the others
                waiting.setdefault(held, []).append(item)
                done.add(item.row.id or 0)
                stats.retried += 1
                continue
            together = self._same_thread(item, items[index:], done=done)
            outcomes = self._deliver_thread(together, now=now) if together else [(item, self._deliver(item, now=now))]
            if item.row.kind in (OutboxKind.ALERT, OutboxKind.CHANNEL) and outcomes[-1][1] == "retried":
                retry_at = self._paced_until(item)
                if retry_at is not None:
                    paced[item.row.target] = retry_at
            for delivered, outcome in outcomes:
                done.add(delivered.row.id or 0)
                setattr(stats, outcome, getattr(stats, outcome) + 1)
                if outcome == "sent" and delivered.row.kind == OutboxKind.ALERT:
                    stats.alerts_posted += 1
                stats.by_kind[delivered.row.kind] = stats.by_kind.get(delivered.row.kind, 0) + 1
        for retry_at, held_back in waiting.items():  # one statement, not one transaction per row
            release(self.engine, held_back, worker=self.worker, now=now, retry_at=retry_at)
        return stats

    def _paced_until(self, item: Claimed) -> datetime | None:
        """When a row handed back untried (paced, or Slack's Retry-After) may go, if it was not tried."""
        with transaction(self.engine) as s:
            row = s.get(Outbox, item.row.id)
            if row is None or row.state != OutboxState.PENDING or row.next_attempt_at is None:
                return None
            return row.next_attempt_at

    # ------------------------------------------------------------------ thread notes, coalesced

    def _coalescing(self, item: Claimed) -> bool:
        row = item.row
        return (row.kind == OutboxKind.THREAD and not item.recovering and not row.payload.get("broadcast")
                and self.notifier.lines_per_message > 1)

    def _same_thread(self, first: Claimed, rest: list[Claimed], *, done: set[int]) -> list[Claimed]:
        """`first` and the other thread notes of this batch bound for its thread, when there is a
        thread to post in and more than one note for it (otherwise [] and the row goes alone)."""
        if not self._coalescing(first):
            return []
        candidates = [i for i in rest if i.row.id not in done and self._coalescing(i)]
        threads = self._threads([i.row.case_id for i in candidates])
        mine = threads.get(first.row.case_id or 0)
        if mine is None or mine not in self._group_threads:
            return []  # a single alert's few notes go one by one, as they always did
        together = [i for i in candidates if threads.get(i.row.case_id or 0) == mine]
        members = any(i.row.payload.get("note") == "group_member" for i in together)
        return together if len(together) > 1 or members else []

    def _threads(self, case_ids: list[int | None]) -> dict[int, tuple[str, str]]:
        """case id -> (channel, ts) of the thread its notes go to: its alert's, or its group's message's."""
        wanted = sorted({c for c in case_ids if c})
        found: dict[int, tuple[str, str]] = {}
        with transaction(self.engine) as s:
            cases = {c.id: c for c in s.exec(select(Case).where(Case.id.in_(wanted))).all()} if wanted else {}
            leaders_wanted = sorted({c.grouped_into for c in cases.values()
                                     if not c.alert_ref and c.grouped_into and c.grouped_into != c.id})
            leaders = {c.id: c for c in s.exec(select(Case).where(Case.id.in_(leaders_wanted))).all()} \
                if leaders_wanted else {}
        for case_id, case in cases.items():
            thread = case if case.alert_ref else leaders.get(case.grouped_into or 0)
            if thread is not None and thread.alert_ref and case_id is not None:
                found[case_id] = (thread.alert_channel, thread.alert_ref)
                if thread.grouped_into == thread.id:  # a grouped message's thread, shared by its cases
                    self._group_threads.add(found[case_id])
        return found

    def _deliver_thread(self, items: list[Claimed], *, now: datetime) -> list[tuple[Claimed, str]]:
        """Post the notes of one thread, `lines_per_message` to a message; each row is finished with
        the message that carried it."""
        per_message = max(1, self.notifier.lines_per_message)
        outcomes: list[tuple[Claimed, str]] = []
        for start in range(0, len(items), per_message):
            chunk = items[start:start + per_message]
            outcomes += self._post_lines(chunk, now=now)
            if outcomes and outcomes[-1][1] == "retried":  # paced or refused for now: the rest waits too
                rest = items[start + per_message:]
                if rest:
                    release(self.engine, rest, worker=self.worker, now=now,
                            retry_at=self._next_attempt(outcomes[-1][0]))
                    outcomes += [(i, "retried") for i in rest]
                break
        return outcomes

    def _next_attempt(self, item: Claimed) -> datetime | None:
        with transaction(self.engine) as s:
            row = s.get(Outbox, item.row.id)
            return row.next_attempt_at if row is not None else None

    def _post_lines(self, chunk: list[Claimed], *, now: datetime) -> list[tuple[Claimed, str]]:
        outcomes: list[tuple[Claimed, str]] = []
        thread = self._threads([chunk[0].row.case_id]).get(chunk[0].row.case_id or 0)
        if thread is None:  # the alert was deleted meanwhile: each row takes the single path
            return [(i, self._deliver(i, now=now)) for i in chunk]
        channel, ts = thread
        try:
            self._pace(channel, now=now)  # before any wording: a paced chunk costs nothing
        except _Paced as wait:
            release(self.engine, chunk, worker=self.worker, now=now, retry_at=now + wait.delay)
            return [(i, "retried") for i in chunk]
        lines: list[tuple[Claimed, ThreadLine]] = []
        failed: list[tuple[Claimed, ConnectorError]] = []
        with transaction(self.engine) as s:  # one read transaction for the whole message
            for item in chunk:
                try:
                    lines.append((item, self._thread_line(s, item.row, now=now)))
                except ConnectorError as exc:  # a note we cannot word fails alone
                    failed.append((item, exc))
        for item, exc in failed:
            self._fail(item.row, now=now, exc=exc)
            outcomes.append((item, "failed"))
        if not lines:
            return outcomes
        rows = [item for item, _ in lines]
        text, blocks = self.notifier.render_thread([line for _, line in lines])
        metadata = {"event_type": "mm_outbox", "event_payload": {"outbox_ids": ",".join(str(i.row.id) for i in rows)}}
        try:
            posted = self.notifier.post(channel=channel, text=text, blocks=blocks, thread_ts=ts, metadata=metadata)
        except RateLimited as exc:
            self._hold(channel, until=exc.until, now=now, error=str(exc))
            for item in rows:
                self._retry(item.row, now=now, at=exc.until, error=str(exc))
            return outcomes + [(i, "retried") for i in rows]
        except Refused:
            # Slack refused the blocks: each note goes alone, as text, the way it always could
            return outcomes + [(i, self._deliver(i, now=now)) for i in rows]
        except (Transient, AuthFailed, BadPayload) as exc:
            for item in rows:
                self._retry(item.row, now=now, at=now + backoff(item.row.attempts), error=str(exc))
            return outcomes + [(i, "retried") for i in rows]
        if self.pacer is not None:
            self.pacer.learn(channel, posted.channel)
        finish_sent(self.engine, [i.row for i in rows], worker=self.worker, now=now,
                    result={"channel": posted.channel, "ts": posted.ts})
        return outcomes + [(i, "sent") for i in rows]

    def _thread_line(self, s: Session, row: Outbox, *, now: datetime) -> ThreadLine:
        """The worded note of a thread row, with its case's buttons for a group member."""
        case = s.get(Case, row.case_id) if row.case_id else None
        if case is None:
            raise Refused(f"case {row.case_id} does not exist")
        text = compose(s, row.payload, escape=self.notifier.escape, mention_user=self.notifier.mention_user, now=now,
                       timezone=self.timezone(), time_ref=self.notifier.time_ref,
                       case=case if case.grouped_into else None)
        member = None
        member_id = row.payload.get("member_case_id") if row.payload.get("note") == "group_member" else None
        if member_id:
            member_case = s.get(Case, member_id)
            mention = s.get(Mention, member_case.first_mention_id) if member_case and \
                member_case.first_mention_id else None
            if member_case is not None and mention is not None:
                member = build_view(case=member_case, mention=mention, now=now, timezone=self.timezone(),
                                    ack_posted=_ack_posted(s, member_case.id))
        return ThreadLine(text=text, member=member)

    def _deliver(self, item: Claimed, *, now: datetime) -> str:
        row = item.row
        try:
            if row.kind in PUBLIC_KINDS:
                if self.replies is None:
                    raise Refused("no platform connector configured for replies")
                return self.replies.deliver(item, now=now)
            if row.kind == OutboxKind.ALERT:
                self._alert(item, now=now)
            elif row.kind == OutboxKind.ALERT_UPDATE:
                self._update(row, now=now)
            elif row.kind == OutboxKind.DIGEST:
                self._digest(row, now=now)
            else:
                self._message(row, now=now)
            return "sent"
        except _Paced as wait:  # not tried: the attempt is not counted, so no look-up follows
            release(self.engine, [item], worker=self.worker, now=now, retry_at=now + wait.delay)
            return "retried"
        except _NotYet as wait:
            finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.PENDING,
                   retry_at=now + wait.delay, error=str(wait))
            return "retried"
        except RateLimited as exc:
            if row.kind == OutboxKind.ALERT_UPDATE:  # chat.update's own limit: the channel may still take posts
                if self.update_pacer is not None:
                    self.update_pacer.hold(_UPDATES, until=exc.until, now=now)
            elif row.kind not in PUBLIC_KINDS:
                self._hold(self._channel_of(row), until=exc.until, now=now, error=str(exc))
            self._retry(row, now=now, at=exc.until, error=str(exc))
            return "retried"
        except (Transient, AuthFailed) as exc:
            self._retry(row, now=now, at=now + backoff(row.attempts), error=str(exc))
            return "retried"
        except BadPayload as exc:
            if row.attempts < MALFORMED_ATTEMPTS:  # one garbled answer must not lose a Slack line for good
                self._retry(row, now=now, at=now + backoff(row.attempts), error=str(exc))
                return "retried"
            self._fail(row, now=now, exc=exc)
            return "failed"
        except ConnectorError as exc:
            self._fail(row, now=now, exc=exc)
            return "failed"

    def _channel_of(self, row: Outbox) -> str:
        """The channel a Slack row posts in (a thread note: its thread's channel)."""
        if row.kind == OutboxKind.THREAD:
            thread = self._threads([row.case_id]).get(row.case_id or 0)
            if thread is not None:
                return thread[0]
        return row.target

    def _fail(self, row: Outbox, *, now: datetime, exc: ConnectorError) -> None:
        log.error("outbox %s #%d failed for good: %s", row.kind, row.id, exc)
        if self._digest_draft is not None and self._digest_draft[0] == row.id:
            self._digest_draft = None  # its charts are not kept for a digest that will not be tried again
        reason = str(exc)
        refused_alert = row.kind == OutboxKind.ALERT and row.case_id is not None
        if refused_alert:
            def also(s: Session) -> None:
                self._report_refused(s, case_id=row.case_id or 0, reason=reason, now=now, fallback=False)
        elif row.kind != OutboxKind.ALERT and row.target != self.ops_channel() and \
                not (row.case_id is not None and self._alert_failed(row.case_id)):
            def also(s: Session) -> None:  # a thread line or update lost for good: a person should know
                self._report_lost(s, row=row, reason=reason, now=now)
        else:
            also = None  # type: ignore[assignment]
        finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.FAILED, error=reason, also=also)

    def _report_lost(self, s: Session, *, row: Outbox, reason: str, now: datetime) -> None:
        """Tell #cs-ops that a Slack line could not be posted after its retries (once per row)."""
        channel = self.ops_channel()
        what = msg.OPS_LINE_LOST_CASE.format(case_id=row.case_id) if row.case_id else \
            msg.OPS_LINE_LOST_CHANNEL.format(channel=row.target)
        text = msg.OPS_LINE_LOST.format(what=what, attempts=row.attempts, reason=reason)
        if not channel:
            log.error("%s", text)
            return
        add(s, kind=OutboxKind.CHANNEL, dedup_key=f"line_lost:{row.id}", target=channel, now=now,
            payload={"text": text})

    def _report_refused(self, s: Session, *, case_id: int, reason: str, now: datetime, fallback: bool) -> None:
        """Tell #cs-ops that Slack refused a case's alert (once per case)."""
        channel = self.ops_channel()
        text = (msg.OPS_ALERT_PLAIN if fallback else msg.OPS_ALERT_LOST).format(case_id=case_id, reason=reason)
        if not channel:
            log.error("%s", text)
            return
        add(s, kind=OutboxKind.CHANNEL, dedup_key=f"alert_refused:{case_id}", target=channel, now=now,
            payload={"text": text})

    def _retry(self, row: Outbox, *, now: datetime, at: datetime, error: str) -> None:
        log.warning(msg.LOG_DELIVERY_FAILED, row.kind, row.id, error, (at - now).total_seconds())
        finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.PENDING, retry_at=at, error=error)

    # ------------------------------------------------------------------ Slack kinds

    def _hold(self, channel: str, *, until: datetime, now: datetime, error: str) -> None:
        """Slack answered 429 for `channel`: nothing goes there before `until`, from any process."""
        if self.pacer is not None:
            self.pacer.hold(channel, until=until, now=now)
        for name in self.pacer.names(channel) if self.pacer is not None else {channel}:
            self._holds[name] = until
            keep_hold(self.engine, name=HOLD_PREFIX + name, until=until, error=error)

    def _pace(self, channel: str, *, now: datetime) -> None:
        held = self._holds.get(channel)
        if held is not None and held > now:
            raise _Paced(held - now)
        if self.pacer is not None:
            wait = self.pacer.take(channel, now)
            if wait > timedelta(0):
                raise _Paced(wait)

    def _pace_update(self, *, now: datetime) -> None:
        if self.update_pacer is not None:
            wait = self.update_pacer.take(_UPDATES, now)
            if wait > timedelta(0):
                raise _Paced(wait)

    def _load(self, case_id: int | None) -> tuple[Case, Mention]:
        with transaction(self.engine) as s:
            case = s.get(Case, case_id) if case_id else None
            if case is None:
                raise Refused(f"case {case_id} does not exist")
            mention = s.get(Mention, case.first_mention_id) if case.first_mention_id else None
            if mention is None:
                raise Refused(f"case {case_id} has no mention")
            return case, mention

    def _view(self, case: Case, mention: Mention, *, now: datetime):  # type: ignore[no-untyped-def]
        with transaction(self.engine) as s:
            ack_posted = _ack_posted(s, case.id)
            grouped = 0
            members: tuple[OpenCaseLine, ...] = ()
            if case.grouped_into == case.id:
                grouped = int(s.exec(select(sa.func.count()).select_from(Case).where(
                    Case.grouped_into == case.id)).one())
                if grouped > 1:
                    members = _newest_members(s, leader_id=case.id or 0)
        view = build_view(case=case, mention=mention, now=now, timezone=self.timezone(), ack_posted=ack_posted)
        if grouped > 1:  # a group of one reads as the case's own alert, buttons and all
            view = replace(view, grouped_count=grouped, members=members)
        return view

    def _alert(self, item: Claimed, *, now: datetime) -> None:
        row = item.row
        case, mention = self._load(row.case_id)
        posted = None
        refused = ""
        if item.recovering or row.attempts > 1:
            posted = self.notifier.find_by_metadata(channel=row.target, key="case_id", value=str(case.id))
        if posted is None:
            self._pace(row.target, now=now)
            text, blocks = self.notifier.render_alert(self._view(case, mention, now=now))
            metadata = {"event_type": ALERT_METADATA, "event_payload": {"case_id": str(case.id)}}
            try:
                posted = self.notifier.post(channel=row.target, text=text, blocks=blocks, metadata=metadata)
            except Refused as exc:
                # Slack refused the blocks (invalid_blocks, msg_too_long...): the case still reaches
                # the team as a plain message, and #cs-ops learns why it looks bare.
                refused = str(exc)
                log.error("outbox alert #%d: Slack refused the blocks, posting a plain alert: %s", row.id, exc)
                posted = self.notifier.post(channel=row.target, metadata=metadata,
                                            text=msg.SLACK_PLAIN_ALERT.format(case_id=case.id, text=text))
            if self.pacer is not None:
                self.pacer.learn(row.target, posted.channel)

        def record(s: Session) -> None:
            fresh = s.get(Case, case.id)
            if fresh is not None:
                fresh.alert_channel = posted.channel
                fresh.alert_ref = posted.ts
                s.add(fresh)
            if refused:
                self._report_refused(s, case_id=case.id or 0, reason=refused, now=now, fallback=True)

        finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.SENT,
               result={"channel": posted.channel, "ts": posted.ts}, also=record)

    def _update_line(self, case: Case, *, now: datetime) -> bool:
        """Re-render the thread message that carries a grouped case's line (chat.update), with every
        line it carries, when what the line shows changed: a claimed member shows who claimed it and
        offers its next actions, not Claim.  Only a person's action changes it (claim, acknowledge,
        snooze, resolve), so a storm's follow-ups and automatic acknowledgements cost no chat.update.
        Nothing to do while the line is not posted yet: it is worded fresh when it is.  True if updated."""
        table = Outbox.__table__
        shown = f"{case.assignee}|{case.state}"
        with transaction(self.engine) as s:
            carrier = s.exec(select(Outbox).where(Outbox.dedup_key == f"{MEMBER_PREFIX}{case.id}",
                                                  Outbox.state == OutboxState.SENT)).first()
            posted = dict(carrier.result or {}) if carrier is not None else {}
            channel, ts = posted.get("channel"), posted.get("ts")
            if carrier is None or not channel or not ts or posted.get("shown", f"|{CaseState.OPEN}") == shown:
                return False
            group = select(Case.id).where(Case.grouped_into == case.grouped_into)
            rows = s.exec(select(Outbox).where(
                Outbox.kind == OutboxKind.THREAD, Outbox.state == OutboxState.SENT, Outbox.case_id.in_(group),
                table.c.result["ts"].as_string() == str(ts))).all()
            # the message's order: the members' lines first, then the notes (claim's priority), by id
            rows = sorted(rows, key=lambda r: (not r.dedup_key.startswith(MEMBER_PREFIX), r.id or 0))
            lines = [self._thread_line(s, r, now=now) for r in rows]
        if not lines:
            return False
        self._pace_update(now=now)
        text, blocks = self.notifier.render_thread(lines)
        self.notifier.update(channel=str(channel), ts=str(ts), text=text, blocks=blocks)
        with transaction(self.engine) as s:
            s.execute(sa.update(table).where(table.c.id == carrier.id).values(result={**posted, "shown": shown}))
        return True

    def _alert_failed(self, case_id: int | None) -> bool:
        with transaction(self.engine) as s:
            return s.exec(select(sa.func.count()).select_from(Outbox).where(
                Outbox.case_id == case_id, Outbox.kind == OutboxKind.ALERT,
                Outbox.state == OutboxState.FAILED)).one() > 0

    def _update(self, row: Outbox, *, now: datetime) -> None:
        case, mention = self._load(row.case_id)
        # a grouped case's line in its group's thread shows who has it and offers its next actions
        changed = self._update_line(case, now=now) if case.grouped_into else False
        if not case.alert_ref:
            if case.grouped_into and case.grouped_into != case.id:
                leader = case.grouped_into

                def also(s: Session) -> None:  # the group's message lists its newest members' state too
                    if changed and case.id in {m.case_id for m in _newest_members(s, leader_id=leader)}:
                        request_update(s, case_id=leader, channel=case.channel, now=now)

                finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.SENT, also=also)
                return
            if self._alert_failed(case.id):
                raise Refused(f"the alert of case {case.id} was refused by Slack: nothing to update")
            raise _NotYet("the alert is not posted yet", delay=timedelta(seconds=2))
        self._pace_update(now=now)
        text, blocks = self.notifier.render_alert(self._view(case, mention, now=now))
        self.notifier.update(channel=case.alert_channel, ts=case.alert_ref, text=text, blocks=blocks)
        finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.SENT)

    def _message(self, row: Outbox, *, now: datetime) -> None:
        thread_ts = ""
        named: Case | None = None  # the note's case, named in a thread its group shares
        if row.kind == OutboxKind.THREAD:
            case, _ = self._load(row.case_id)
            named = case if case.grouped_into else None
            if not case.alert_ref and case.grouped_into and case.grouped_into != case.id:
                # A case grouped into a storm message never gets an alert of its own: its notes
                # go to the group message's thread.  Waiting for its own alert retried them every
                # 2 s forever, and they blocked the head of the queue (bench/memory.py).
                with transaction(self.engine) as s:
                    leader = s.get(Case, case.grouped_into)
                case = leader or case
            if not case.alert_ref:
                if self._alert_failed(case.id):  # the thread will never exist: do not wait for it forever
                    raise Refused(f"the alert of case {case.id} was refused by Slack, so it has no thread")
                raise _NotYet("the alert is not posted yet", delay=timedelta(seconds=2))
            thread_ts = case.alert_ref
            channel = case.alert_channel
        else:
            channel = row.target
        payload = row.payload
        if payload.get("note") == "escalation" and not payload.get("permalink"):
            payload = {**payload, "permalink": self._permalink(payload.get("case_id"))}
        with transaction(self.engine) as s:
            text = compose(s, payload, escape=self.notifier.escape, mention_user=self.notifier.mention_user, now=now,
                           timezone=self.timezone(), time_ref=self.notifier.time_ref, case=named)
        posted = None
        metadata = {"event_type": "mm_outbox", "event_payload": {"outbox_id": str(row.id)}}
        if row.kind == OutboxKind.CHANNEL and row.attempts > 1:
            posted = self.notifier.find_by_metadata(channel=channel, key="outbox_id", value=str(row.id))
        if posted is None:
            self._pace(channel, now=now)
            posted = self.notifier.post(channel=channel, text=text, thread_ts=thread_ts, metadata=metadata,
                                        broadcast=bool(row.payload.get("broadcast")))
            if self.pacer is not None:
                self.pacer.learn(channel, posted.channel)
        finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.SENT,
               result={"channel": posted.channel, "ts": posted.ts})

    def _digest(self, row: Outbox, *, now: datetime) -> None:
        """Compose the digest scheduled at the row's time and share it (summary and charts) as one message.
        At least once: a crash between the upload and this row's finish shares it again."""
        if self.digests is None:
            raise Refused("no digest composer configured")
        self._pace(row.target, now=now)
        due = row.payload["due"]
        draft = self._digest_draft
        if draft is not None and draft[:2] == (row.id, due):
            message = draft[2]
        else:
            try:
                message = self.digests(datetime.fromisoformat(due))
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
                # the charts' child failed, or the digest was removed from rules.yaml (the message says which):
                # retried a few times, then failed and reported
                raise BadPayload(str(exc)) from exc
            self._digest_draft = (row.id, due, message)
        self.notifier.upload_files(channel=row.target, files=message.files, title=message.title,
                                   initial_comment=message.comment)
        self._digest_draft = None
        finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.SENT)
        log.info("digest posted for the period before %s", row.payload["due"])

    def _permalink(self, case_id: int | None) -> str:
        """The link to a case's alert (chat.getPermalink), or "" when there is none to give."""
        with transaction(self.engine) as s:
            case = s.get(Case, case_id) if case_id else None
            if case is not None and not case.alert_ref and case.grouped_into:
                case = s.get(Case, case.grouped_into)  # a grouped case's alert is its group's message
        if case is None or not case.alert_ref:
            return ""
        try:
            return str(self.notifier.permalink(channel=case.alert_channel, ts=case.alert_ref))
        except ConnectorError as exc:
            log.warning("no link to the alert of case %s: %s", case_id, exc)
            return ""


GROUP_NEWEST = 10  # the members a grouped message lists (all of them have a line in its thread)


def _ack_posted(s: Session, case_id: int | None) -> bool:
    return s.exec(select(sa.func.count()).select_from(Outbox).where(
        Outbox.case_id == case_id, Outbox.kind == OutboxKind.REPLY_PUBLIC, Outbox.state == OutboxState.SENT)).one() > 0


def _newest_members(s: Session, *, leader_id: int) -> tuple[OpenCaseLine, ...]:
    rows = s.exec(select(Case, Mention).join(Mention, Mention.id == Case.first_mention_id)
                  .where(Case.grouped_into == leader_id).order_by(Case.id.desc()).limit(GROUP_NEWEST)).all()
    return tuple(OpenCaseLine(case_id=c.id or 0, platform=c.platform, author_handle=c.author_handle, text=m.text,
                              rule=c.rule, severity=c.severity, sla_due_at=c.sla_due_at, assignee=c.assignee,
                              state=c.state, sla_seconds=c.sla_seconds) for c, m in rows)


class _Paced(Exception):
    def __init__(self, delay: timedelta) -> None:
        super().__init__(f"channel budget spent; next message in {delay.total_seconds():.1f}s")
        self.delay = delay


class _NotYet(Exception):
    def __init__(self, message: str, *, delay: timedelta) -> None:
        super().__init__(message)
        self.delay = delay


def backlog(engine: Engine) -> int:
    """Slack messages (alerts, lines, notes, edits) still queued: what `run --once` says it left.
    Platform replies are not counted: they keep their own pace and their own at-most-once path."""
    with Session(engine) as s:
        return int(s.exec(select(sa.func.count()).select_from(Outbox).where(
            Outbox.state.in_([OutboxState.PENDING, OutboxState.SENDING]), Outbox.platform == "slack")).one())
