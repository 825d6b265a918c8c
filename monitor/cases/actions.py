"""What the team does from Slack: claim, acknowledge, reply, snooze, resolve; /mentions and App Home data.

Every action is idempotent (a double click changes the case once), is written to
the case's timeline, and asks for the alert to be re-rendered through the outbox.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.cases import acknowledge
from monitor.clock import Clock
from monitor.delivery import outbox
from monitor.delivery.notes import humanize
from monitor.model import Case, CaseState, Event, Mention, Outbox, OutboxKind, OutboxState
from monitor.rules.schema import Ruleset
from monitor.store import transaction


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    ok: bool
    changed: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class OpenCaseLine:
    case_id: int
    platform: str
    author_handle: str
    text: str
    rule: str
    severity: str
    sla_due_at: datetime | None
    assignee: str
    state: str
    slack_channel: str = ""
    slack_ts: str = ""


class CaseActions:
    def __init__(
        self, *, engine: Engine, rules: Callable[[], Ruleset], clock: Clock,
        policies: Mapping[str, Any] | None = None, dry_run: bool = False,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.clock = clock
        self.policies = policies or {}
        self.dry_run = dry_run

    def timezone(self) -> str:
        return self.rules().business_hours.timezone

    # ------------------------------------------------------------------ state changes

    def _change(self, case_id: int, user: str, kind: str, apply: Callable[[Session, Case, datetime], str | None],
                **note: Any) -> ActionOutcome:
        now = self.clock.now()
        with transaction(self.engine) as s:
            case = s.get(Case, case_id, with_for_update=self.engine.dialect.name == "postgresql")
            if case is None:
                return ActionOutcome(ok=False, changed=False, message=f"case {case_id} does not exist")
            refusal = apply(s, case, now)
            if refusal is not None:
                return ActionOutcome(ok=True, changed=False, message=refusal)
            s.add(case)
            s.add(Event(case_id=case_id, at=now, kind=kind, actor=user, detail={k: str(v) for k, v in note.items()}))
            count = s.exec(select(sa.func.count()).select_from(Event).where(
                Event.case_id == case_id, Event.kind == kind)).one()
            outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"{kind}:{case_id}:{count}", case_id=case_id,
                       target=case.channel, now=now, payload={"note": kind, "user": user, **note})
            outbox.request_update(s, case_id=case_id, channel=case.channel, now=now)
        return ActionOutcome(ok=True, changed=True)

    def claim(self, *, case_id: int, user: str) -> ActionOutcome:
        def apply(s: Session, case: Case, now: datetime) -> str | None:
            if case.state == CaseState.RESOLVED:
                return "this case is already resolved"
            if case.assignee == user:
                return "you have already claimed this case"
            if case.assignee:
                return f"already claimed by <@{case.assignee}>"
            case.assignee = user
            case.claimed_at = now
            return None

        return self._change(case_id, user, "claimed", apply)

    def snooze(self, *, case_id: int, user: str, minutes: int) -> ActionOutcome:
        until = self.clock.now() + timedelta(minutes=minutes)

        def apply(s: Session, case: Case, now: datetime) -> str | None:
            if case.state == CaseState.RESOLVED:
                return "this case is already resolved"
            if case.state == CaseState.SNOOZED and case.snoozed_until and abs(case.snoozed_until - until) < timedelta(minutes=1):
                return "this case is already snoozed"
            case.state = CaseState.SNOOZED
            case.snoozed_until = until
            return None

        return self._change(case_id, user, "snoozed", apply, until=until.isoformat())

    def resolve(self, *, case_id: int, user: str) -> ActionOutcome:
        def apply(s: Session, case: Case, now: datetime) -> str | None:
            if case.state == CaseState.RESOLVED:
                return "this case is already resolved"
            case.state = CaseState.RESOLVED
            case.resolved_at = now
            case.snoozed_until = None
            return None

        return self._change(case_id, user, "resolved", apply)

    def acknowledge(self, *, case_id: int, user: str, authorised: bool, text: str | None = None) -> ActionOutcome:
        """Post the case's acknowledgement (or `text`, if the approver edited it) publicly."""
        return self._public(case_id=case_id, user=user, authorised=authorised, text=text, kind="acknowledged")

    def reply(self, *, case_id: int, user: str, authorised: bool, text: str) -> ActionOutcome:
        if not text.strip():
            return ActionOutcome(ok=False, changed=False, message="the reply is empty")
        return self._public(case_id=case_id, user=user, authorised=authorised, text=text, kind="reply_queued")

    def _public(self, *, case_id: int, user: str, authorised: bool, text: str | None, kind: str) -> ActionOutcome:
        now = self.clock.now()
        ruleset = self.rules()
        with transaction(self.engine) as s:
            case = s.get(Case, case_id, with_for_update=self.engine.dialect.name == "postgresql")
            if case is None:
                return ActionOutcome(ok=False, changed=False, message=f"case {case_id} does not exist")
            if not authorised:
                s.add(Event(case_id=case_id, at=now, kind="public_refused", actor=user))
                return ActionOutcome(ok=False, changed=False, message="not authorised to post publicly")
            mention = s.get(Mention, case.first_mention_id) if case.first_mention_id else None
            if mention is None:
                return ActionOutcome(ok=False, changed=False, message="the case has no mention to answer")
            body = (text or case.ack_text).strip()
            if not body:
                return ActionOutcome(ok=False, changed=False, message="there is no acknowledgement text for this case")
            policy = self.policies.get(mention.platform)
            if policy is not None and len(body) > policy.max_reply_length:
                return ActionOutcome(ok=False, changed=False, message=(
                    f"the text is {len(body)} characters, over {mention.platform}'s limit of {policy.max_reply_length}"))
            dry = self.dry_run or case.dry_run or ruleset.acknowledgement.dry_run
            if kind == "acknowledged":
                private_template = None
                rule = next((r for r in ruleset.rules if r.name == case.rule), None)
                if rule is not None and rule.acknowledge is not None:
                    private_template = rule.acknowledge.private_template
                queued = acknowledge.queue(s, case=case, mention=mention, text=body, lang=mention.lang, policy=policy,
                                           now=now, dry_run=dry, actor=user, ruleset=ruleset,
                                           private_template=private_template)
                if not queued:
                    return ActionOutcome(ok=True, changed=False, message="this conversation was already acknowledged")
            else:
                digest = hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]  # same text twice: one reply
                outbox.add(s, kind=OutboxKind.REPLY_PUBLIC, dedup_key=f"reply:{case_id}:{digest}",
                           case_id=case_id, mention_id=mention.id, platform=mention.platform,
                           target=mention.external_id, now=now, author_id=mention.author_id,
                           payload={"target": acknowledge.target_payload(mention), "text": body, "lang": mention.lang, "dry_run": dry,
                                    "actor": user, "author_id": mention.author_id})
            case.first_response_at = case.first_response_at or now
            case.acknowledged_at = case.acknowledged_at or now
            if case.state in (CaseState.OPEN, CaseState.SNOOZED):
                case.state = CaseState.ACKNOWLEDGED
            s.add(case)
            s.add(Event(case_id=case_id, at=now, kind=kind, actor=user, detail={"text": body}))
            outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"{kind}:{case_id}:{now.timestamp()}", case_id=case_id,
                       target=case.channel, now=now, payload={"note": kind, "user": user, "text": body})
            outbox.request_update(s, case_id=case_id, channel=case.channel, now=now)
        return ActionOutcome(ok=True, changed=True)

    # ------------------------------------------------------------------ views

    def open_cases(self) -> list[OpenCaseLine]:
        with Session(self.engine) as s:
            rows = s.exec(
                select(Case, Mention).join(Mention, Mention.id == Case.first_mention_id)
                .where(Case.state != CaseState.RESOLVED).order_by(Case.sla_due_at)
            ).all()
        return [OpenCaseLine(case_id=c.id or 0, platform=c.platform, author_handle=c.author_handle, text=m.text,
                             rule=c.rule, severity=c.severity, sla_due_at=c.sla_due_at, assignee=c.assignee,
                             state=c.state, slack_channel=c.slack_channel, slack_ts=c.slack_ts) for c, m in rows]

    def stats_today(self) -> dict[str, str]:
        from zoneinfo import ZoneInfo

        now = self.clock.now()
        local = now.astimezone(ZoneInfo(self.timezone()))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        with Session(self.engine) as s:
            mentions = s.exec(select(sa.func.count()).select_from(Mention).where(Mention.created_at >= start)).one()
            cases = s.exec(select(Case).where(Case.opened_at >= start)).all()
            acks = s.exec(select(sa.func.count()).select_from(Outbox).where(
                Outbox.kind == OutboxKind.REPLY_PUBLIC, Outbox.state == OutboxState.SENT, Outbox.sent_at >= start)).one()
        responded = [c for c in cases if c.first_response_at and c.opened_at]
        times = sorted((c.first_response_at - c.opened_at) for c in responded)  # type: ignore[operator]
        met = [c for c in responded if c.sla_due_at and c.first_response_at <= c.sla_due_at]  # type: ignore[operator]
        median = humanize(times[len(times) // 2]) if times else "-"
        attainment = f"{round(100 * len(met) / len(responded))}%" if responded else "-"
        return {
            "Mentions": str(mentions),
            "Cases opened": str(len(cases)),
            "Open now": str(sum(1 for c in cases if c.state != CaseState.RESOLVED)),
            "Median first response": median,
            "Within target": attainment,
            "Public acknowledgements": str(acks),
        }

