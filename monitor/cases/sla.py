"""Response-time targets: deadlines, the pre-breach warning, breach and escalation, live countdowns.

`sweep` runs every ~15 s.  Each step (warning, breach, escalation step N) is
recorded on the case in the same transaction as its outbox row, so it happens
once however often the sweep runs or restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from monitor.delivery import notes, outbox
from monitor.model import Case, CaseState, Event, Mention, Outbox, OutboxKind
from monitor.rules.business_hours import BusinessHours, add_business_time
from monitor.rules.schema import Ruleset
from monitor.store import select_rows, transaction

# chat.update is rate-limited per workspace (Tier 3, about 50 a minute); stay well below it
MAX_UPDATES_PER_SWEEP = 10


def due_at(*, start: datetime, seconds: int, business_hours: BusinessHours | None) -> datetime:
    if business_hours is None:
        return start + timedelta(seconds=seconds)
    return add_business_time(start, seconds, hours=business_hours)


def countdown_step(left: timedelta) -> str:
    """The label an alert's countdown shows; the alert is updated only when it changes.

    Coarse far from the deadline, finer near it: every 15 min above an hour, every 5 min above
    10 min, every 2 min in the last 10.  Once overdue: every 15 min in the first hour, hourly up
    to 6 h, then every 6 h.  A 30-minute target forgotten for a day costs about 20 chat.update
    calls, so a storm of open cases stays far below Slack's Tier 3 limit (~50 a minute)."""
    minutes = left.total_seconds() / 60
    if minutes > 60:
        return f"h{math.ceil(minutes / 15)}"
    if minutes > 10:
        return f"m{math.ceil(minutes / 5)}"
    if minutes > 0:
        return f"s{math.ceil(minutes / 2)}"
    late = -minutes
    if late < 60:
        return f"o{math.floor(late / 15)}"
    if late < 6 * 60:
        return f"oh{math.floor(late / 60)}"
    return f"od{math.floor(late / 360)}"


@dataclass(slots=True)
class SweepResult:
    warned: int = 0
    breached: int = 0
    escalated: int = 0
    updated: int = 0
    unsnoozed: int = 0


def sweep(engine: Engine, *, ruleset: Ruleset, now: datetime) -> SweepResult:
    result = SweepResult()
    with transaction(engine) as s:
        # Every waiting case is read as a few plain columns, and only those this sweep changes are
        # loaded as rows to change: thousands of ORM objects every 15 s were the daemon's memory peak
        # after a burst (bench/memory.py), and most waiting cases just go on waiting.
        # The rows stream from the cursor (not .all()): after a burst thousands wait, and a list of
        # them all every 15 s was an idle daemon's largest allocation, spread over fresh heap arenas.
        ids, updates_left = [], MAX_UPDATES_PER_SWEEP
        for row in s.exec(_WAITING_FACTS):
            if updates_left and _countdown_moved(row, now=now):  # the loop's first MAX_UPDATES_PER_SWEEP
                updates_left -= 1
                ids.append(row.id)
            elif _changes(row, ruleset=ruleset, now=now):
                ids.append(row.id)
        place = {case_id: index for index, case_id in enumerate(ids)}  # the facts' order: by deadline
        waiting: list[Case] = []
        for start in range(0, len(ids), 500):
            waiting.extend(s.exec(select(Case).where(Case.id.in_(ids[start:start + 500]))).all())
        waiting.sort(key=lambda case: place[case.id])
        updates = 0
        for case in waiting:
            assert case.id is not None and case.sla_due_at is not None and case.opened_at is not None
            if case.state == CaseState.SNOOZED:
                if _snooze_over(case, now=now):
                    case.state = CaseState.OPEN
                    case.snoozed_until = None
                    result.unsnoozed += 1
                    _note(s, case, notes.SnoozeOver(case_id=case.id or 0), now=now)
                    outbox.request_update(s, case_id=case.id, channel=case.channel, now=now)
                    s.add(case)
                continue  # a snoozed case is not nagged about; its deadline still counts in the KPIs
            if _warning_due(case, ruleset=ruleset, now=now):
                case.warned_at = now
                result.warned += 1
                who = [case.assignee] if case.assignee else _oncall(ruleset)
                _note(s, case, notes.SlaWarning(case_id=case.id or 0, who=who, percent=round(ruleset.escalation.warn_at * 100)),
                      now=now)
            if _breach_due(case, now=now):
                case.breached_at = now
                case.warned_at = case.warned_at or now
                result.breached += 1
                who = [case.assignee] if case.assignee else _oncall(ruleset)
                _note(s, case, notes.Breach(case_id=case.id or 0, who=who), now=now)
                s.add(Event(case_id=case.id, at=now, kind="breached", detail={"due": case.sla_due_at.isoformat()}))
            if case.breached_at is not None:
                for index, step in enumerate(ruleset.escalation.steps):
                    if not _step_due(case, index, step.after, now=now):
                        continue
                    case.escalation_level = index + 1
                    result.escalated += 1
                    channel = ruleset.channels.get(step.channel, step.channel)
                    outbox.add(s, kind=OutboxKind.CHANNEL, dedup_key=f"escalation:{case.id}:{index + 1}",
                               case_id=case.id, target=channel, now=now,
                               payload=notes.Escalation(case_id=case.id, step=index + 1,
                                                              who=list(step.notify)).payload())
                    s.add(Event(case_id=case.id, at=now, kind="escalated", detail={"step": index + 1}))
            if _countdown_moved(case, now=now):
                if updates < MAX_UPDATES_PER_SWEEP:
                    case.countdown_step = countdown_step(case.sla_due_at - now)
                    outbox.request_update(s, case_id=case.id, channel=case.channel, now=now)
                    updates += 1
            s.add(case)
        result.updated = updates
        _spike(s, ruleset=ruleset, now=now)
    return result


_WAITING_FACTS = select(
    Case.id, Case.state, Case.snoozed_until, Case.opened_at, Case.sla_seconds, Case.sla_business_hours,
    Case.sla_due_at, Case.warned_at, Case.breached_at, Case.escalation_level, Case.grouped_into,
    Case.countdown_step, Case.alert_ref,
).where(
    Case.state.in_([CaseState.OPEN, CaseState.SNOOZED]),
    Case.first_response_at.is_(None),
    Case.sla_due_at.is_not(None),
    Case.backfilled_at.is_(None),  # history: nobody is paged about the past
).order_by(Case.sla_due_at)


def _changes(case: Any, *, ruleset: Ruleset, now: datetime) -> bool:
    """Whether `sweep`'s loop changes this waiting case (its facts: _WAITING_FACTS's columns) other
    than by its countdown: a snooze that is over, the warning or the breach due, an escalation step
    due.  The loop checks each again on the loaded row."""
    if case.state == CaseState.SNOOZED:
        return _snooze_over(case, now=now)
    if _breach_due(case, now=now) or _warning_due(case, ruleset=ruleset, now=now):
        return True
    return case.breached_at is not None and any(
        _step_due(case, index, step.after, now=now) for index, step in enumerate(ruleset.escalation.steps))


# What `sweep` does to a waiting case, decided from the case's facts (a loaded row or _WAITING_FACTS's
# columns): the loop and its pre-selection (`_changes`, `_countdown_moved`) ask the same questions.
def _snooze_over(case: Any, *, now: datetime) -> bool:
    return bool(case.snoozed_until and case.snoozed_until <= now)


def _breach_due(case: Any, *, now: datetime) -> bool:
    return case.breached_at is None and now >= case.sla_due_at


def _warning_due(case: Any, *, ruleset: Ruleset, now: datetime) -> bool:
    if case.warned_at is not None or now >= case.sla_due_at:
        return False
    hours = ruleset.business_hours if case.sla_business_hours else None
    return now >= due_at(start=case.opened_at, seconds=int(case.sla_seconds * ruleset.escalation.warn_at),
                         business_hours=hours)


def _step_due(case: Any, index: int, after: timedelta, *, now: datetime) -> bool:
    """Escalation step `index` (0-based) is due and not taken yet."""
    return index >= case.escalation_level and now >= case.sla_due_at + after


def _countdown_moved(case: Any, *, now: datetime) -> bool:
    """A new countdown label for a case's own alert (the loop updates the first MAX_UPDATES_PER_SWEEP)."""
    if case.state == CaseState.SNOOZED:
        return False
    return bool(case.grouped_into in (None, case.id) and case.alert_ref
                and countdown_step(case.sla_due_at - now) != case.countdown_step)


def _oncall(ruleset: Ruleset) -> list[str]:
    return [ruleset.slack.oncall] if ruleset.slack.oncall else []


def _note(s, case: Case, note: notes.Note, *, now: datetime) -> None:  # type: ignore[no-untyped-def]
    assert case.id is not None
    # the case's own id: the outbox finds the thread (its group's, for a grouped case) and names the case there
    outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"{note.kind}:{case.id}:{case.opened_at.isoformat() if case.opened_at else ''}",
               case_id=case.id, target=case.channel, now=now, payload=note.payload())


def _spike(s, *, ruleset: Ruleset, now: datetime) -> None:  # type: ignore[no-untyped-def]
    """Volume in the last window above the trailing mean + k sigma raises one alert per window."""
    spike = ruleset.spike
    if spike is None:
        return
    window = spike.window
    buckets = int(spike.history / window)  # window i back from now: created in (now - (i+1) window, now - i window]
    if buckets < 2:
        return  # no history to compare the current window with
    # Counted by the database, one indexed range a window: reading every post's time of the whole history
    # into Python at every sweep cost 57-190 ms CPU at 20,000 posts a day, four times a minute.  The
    # current window also takes posts stamped up to one window after now (the platforms' clocks differ).
    current = select_rows(s, _CURRENT_WINDOW, {"low": now - window, "high": now + window})[0][0]
    if current < spike.min_count:
        return
    history = [select_rows(s, _WINDOW, {"low": now - (i + 1) * window, "high": now - i * window})[0][0]
               for i in range(1, buckets)]
    # A fresh install has no baseline: everything would look like a spike.  Wait for 4 windows of history.
    first_seen = select_rows(s, _FIRST_SINCE, {"start": now - spike.history})[0][0]
    if now - (first_seen or now) < 4 * window:
        return
    mean = sum(history) / len(history)
    sigma = math.sqrt(sum((h - mean) ** 2 for h in history) / len(history))
    if current <= mean + spike.k * sigma:
        return
    window_id = int(now.timestamp() // window.total_seconds())
    if s.exec(select(Outbox.id).where(Outbox.dedup_key == f"spike:{window_id}")).first() is not None:
        return  # raised already: this window's topics and examples are not read again every sweep
    topics, examples = _spike_contents(s, since=now - window)
    outbox.add(s, kind=OutboxKind.CHANNEL, dedup_key=f"spike:{window_id}", target=ruleset.channel(spike.channel),
               now=now, payload=notes.Spike(count=current, window=_fmt(window), mean=mean, sigma=sigma,
                                            topics=topics, example_ids=examples).payload())


_CREATED = Mention.__table__.c.created_at  # type: ignore[attr-defined]
_CUSTOMERS = Mention.__table__.c.from_brand.is_(False)  # type: ignore[attr-defined]
_WINDOW = sa.select(sa.func.count()).where(_CREATED > sa.bindparam("low"), _CREATED <= sa.bindparam("high"), _CUSTOMERS)
_CURRENT_WINDOW = sa.select(sa.func.count()).where(
    _CREATED > sa.bindparam("low"), _CREATED < sa.bindparam("high"), _CUSTOMERS)
_FIRST_SINCE = sa.select(sa.func.min(_CREATED)).where(_CREATED >= sa.bindparam("start"), _CUSTOMERS)

SPIKE_TOPICS = 3
SPIKE_EXAMPLES = 2


def _spike_contents(s, *, since: datetime) -> tuple[list[list[Any]], list[int]]:  # type: ignore[no-untyped-def]
    """What a spike is about: its top complaint categories with their counts, and two of its most
    complaining posts, from different authors."""
    rows = s.exec(select(Mention.id, Mention.author_id, Mention.categories, Mention.complaint).where(
        Mention.created_at >= since, Mention.from_brand.is_(False))).all()
    counts: dict[str, int] = {}
    for _, _, categories, _ in rows:
        for category in categories or []:
            counts[category] = counts.get(category, 0) + 1
    topics = [[category, count] for category, count in
              sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:SPIKE_TOPICS]]
    examples: list[int] = []
    authors: set[str] = set()
    for mention_id, author, _, _ in sorted(rows, key=lambda r: (-(r[3] or 0.0), r[0])):
        if author in authors:
            continue
        authors.add(author)
        examples.append(mention_id)
        if len(examples) == SPIKE_EXAMPLES:
            break
    return topics, examples


def _fmt(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"

