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

from connectors.platforms import PRIVATE_KINDS, Platform, is_private
from monitor import messages as msg
from monitor.cases import acknowledge, silences
from monitor.cases.pipeline import ReplyPolicy
from monitor.clock import Clock
from monitor.delivery import notes, outbox
from monitor.delivery.notes import humanize
from monitor.model import Case, CaseState, Event, Mention, Outbox, OutboxKind, OutboxState
from monitor.rules.schema import Ruleset
from monitor.store import transaction
from monitor.views import OpenCaseLine, SilenceLine


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    ok: bool
    changed: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class PrivateWindow:
    """Whether the Reply… form may answer a public case in private, and why not (said plainly)."""

    offered: bool  # the case is public: a private answer is a question at all
    open: bool
    reason: str = ""  # why not, or what the platform's rule is while open
    human_agent: bool = False  # Messenger: past 24 h, so it goes with the HUMAN_AGENT tag


def private_window(*, platform: Platform | None, platform_name: str, last_private: datetime | None, handed_off: bool,
                   author: str, brand: str, now: datetime) -> PrivateWindow:
    """The platform's rule for a person's private answer: X, once the customer wrote to us in DM;
    Messenger, within 24 h of their last message, or up to 7 days with the human-agent tag."""
    if last_private is None:
        if platform_name == "x":
            return PrivateWindow(offered=True, open=False, reason=msg.DM_X_NOT_YET.format(author=author, brand=brand))
        reason = msg.DM_MESSENGER_NOT_YET if handed_off else msg.DM_MESSENGER_NO_HANDOFF
        return PrivateWindow(offered=True, open=False, reason=reason.format(author=author))
    standard = platform.messaging_window if platform is not None else None
    tagged = platform.human_agent_window if platform is not None else None
    if standard is None or now - last_private <= standard:
        return PrivateWindow(offered=True, open=True)
    if tagged is not None and now - last_private <= tagged:
        return PrivateWindow(offered=True, open=True, human_agent=True,
                             reason=msg.DM_MESSENGER_HUMAN_AGENT.format(closes=last_private + tagged))
    closed = last_private + (tagged or standard)
    return PrivateWindow(offered=True, open=False, reason=msg.DM_MESSENGER_CLOSED.format(closed=closed))


class CaseActions:
    def __init__(
        self, *, engine: Engine, rules: Callable[[], Ruleset], clock: Clock,
        policies: Mapping[str, ReplyPolicy] | None = None, dry_run: bool = False,
        mention_user: Callable[[str], str] = str,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.clock = clock
        self.policies = policies or {}
        self.dry_run = dry_run
        self.mention_user = mention_user  # the notifier's (Notifier.mention_user): how a refusal names a person

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
                       target=case.channel, now=now, payload=notes.team_action(kind, user=user, **note).payload())
            outbox.request_update(s, case_id=case_id, channel=case.channel, now=now)
        return ActionOutcome(ok=True, changed=True)

    def claim(self, *, case_id: int, user: str) -> ActionOutcome:
        def apply(s: Session, case: Case, now: datetime) -> str | None:
            if case.state == CaseState.RESOLVED:
                return "this case is already resolved"
            if case.assignee == user:
                return "you have already claimed this case"
            if case.assignee:
                return f"already claimed by {self.mention_user(case.assignee)}"
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

    def reply(self, *, case_id: int, user: str, authorised: bool, text: str, private: bool = False) -> ActionOutcome:
        """A person's answer: in public, or (`private`) in the customer's DM / Messenger conversation."""
        if not text.strip():
            return ActionOutcome(ok=False, changed=False, message="the reply is empty")
        return self._public(case_id=case_id, user=user, authorised=authorised, text=text,
                            kind="reply_dm_queued" if private else "reply_queued")

    def private_window(self, *, case_id: int) -> PrivateWindow:
        """May the Reply… form answer this case in private now?  (The platform's window, said plainly.)"""
        with Session(self.engine) as s:
            case = s.get(Case, case_id)
            first = s.get(Mention, case.first_mention_id) if case is not None and case.first_mention_id else None
            if case is None or first is None or is_private(first.kind):
                return PrivateWindow(offered=False, open=False)  # a private case is answered in private anyway
            last = self._last_private(s, case)
        policy = self.policies.get(case.platform)
        return private_window(platform=policy.platform if policy is not None else None, platform_name=case.platform,
                              last_private=last.created_at if last is not None else None,
                              handed_off=case.acknowledged_at is not None,
                              author=f"@{case.author_handle}" if case.platform == "x" and case.author_handle
                              else case.author_handle or case.author_id, brand=self.rules().brand.name,
                              now=self.clock.now())

    @staticmethod
    def _last_private(s: Session, case: Case) -> Mention | None:
        """The customer's latest private message attached to the case (what a DM reply answers)."""
        return s.exec(select(Mention).where(
            Mention.case_id == case.id, Mention.kind.in_(sorted(PRIVATE_KINDS)), Mention.from_brand.is_(False))
            .order_by(Mention.created_at.desc(), Mention.id.desc())).first()

    def _public(self, *, case_id: int, user: str, authorised: bool, text: str | None, kind: str) -> ActionOutcome:
        now = self.clock.now()
        ruleset = self.rules()
        # read before the write transaction (SQLite has one writer); the platform checks again on delivery
        window = self.private_window(case_id=case_id) if kind == "reply_dm_queued" else None
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
            if window is not None:
                if not window.open:
                    return ActionOutcome(ok=False, changed=False, message=window.reason or msg.DM_NOT_OFFERED)
                mention = self._last_private(s, case) or mention  # the DM answers their latest private message
            body = (text or case.ack_text).strip()
            if not body:
                return ActionOutcome(ok=False, changed=False, message="there is no acknowledgement text for this case")
            policy = self.policies.get(mention.platform)
            too_long = policy.length_refusal(kind=mention.kind, text=body) if policy is not None else ""
            if too_long:
                return ActionOutcome(ok=False, changed=False, message=too_long)
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
                # a Messenger chat or a DM is answered in the chat: it has no public side
                kind_sent = OutboxKind.REPLY_PRIVATE if is_private(mention.kind) else OutboxKind.REPLY_PUBLIC
                prefix = "reply-dm" if kind == "reply_dm_queued" else "reply"
                queued = outbox.add(
                    s, kind=kind_sent, dedup_key=f"{prefix}:{case_id}:{digest}",
                    case_id=case_id, mention_id=mention.id, platform=mention.platform,
                    target=mention.external_id, now=now, author_id=mention.author_id,
                    payload={"target": {**acknowledge.target_payload(mention), "human_agent": True},  # typed by a person
                             "text": body, "lang": mention.lang,
                             "dry_run": dry, "actor": user, "author_id": mention.author_id})
                if not queued:  # a double submit: the first one's event, note and reply stand
                    return ActionOutcome(ok=True, changed=False, message="this reply is already queued")
            case.first_response_at = case.first_response_at or now
            case.acknowledged_at = case.acknowledged_at or now
            if case.state in (CaseState.OPEN, CaseState.SNOOZED):
                case.state = CaseState.ACKNOWLEDGED
            s.add(case)
            s.add(Event(case_id=case_id, at=now, kind=kind, actor=user, detail={"text": body}))
            note = notes.ReplyQueued(user=user, text=body, private=kind == "reply_dm_queued") \
                if kind in ("reply_queued", "reply_dm_queued") else notes.team_action(kind, user=user, text=body)
            outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"{kind}:{case_id}:{now.timestamp()}", case_id=case_id,
                       target=case.channel, now=now, payload=note.payload())
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
                             rule=c.rule, severity=c.severity, assignee=c.assignee,
                             sla_due_at=None if c.backfilled_at else c.sla_due_at,  # history has no countdown
                             state=c.state, alert_channel=c.alert_channel, alert_ref=c.alert_ref,
                             sla_seconds=c.sla_seconds) for c, m in rows]

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
            muted = silences.muted_between(s, since=start, until=now + timedelta(seconds=1))
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
            # only customers who really wrote in private after a hand-off count (a DM we sent does not)
            msg.SLACK_STATS_MOVED_TO_DM: msg.SLACK_STATS_MOVED_TO_DM_VALUE.format(
                moved=sum(1 for c in cases if c.moved_to_dm),
                handed_off=sum(1 for c in cases if c.acknowledged_at is not None)),
            msg.SLACK_STATS_MUTED: str(muted),
        }

    # ------------------------------------------------------------------ silences (monitor/cases/silences.py)

    def mute_case(self, *, case_id: int, user: str, what: str) -> ActionOutcome:
        """The alert's "Mute 4 h" menu: this case's author, or the rule that raised it."""
        now = self.clock.now()
        with Session(self.engine) as s:
            case = s.get(Case, case_id)
        if case is None:
            return ActionOutcome(ok=False, changed=False, message=f"case {case_id} does not exist")
        target = {"author": f"@{case.author_handle}" if case.author_handle else case.author_id} \
            if what == "author" else {"rule": case.rule}
        silence = silences.add_mute(self.engine, user=user, now=now, duration=silences.SLACK_MUTE_DURATION,
                                    **target)
        with transaction(self.engine) as s:
            s.add(Event(case_id=case_id, at=now, kind="muted", actor=user,
                        detail={"silence": silence.label, "until": silence.until.isoformat()}))
        return ActionOutcome(ok=True, changed=True, message=self._muted(silence, now))

    def mute(self, *, user: str, text: str) -> ActionOutcome:
        """`/mentions mute author @name 4h [comment]` (or keyword, rule)."""
        parsed = silences.parse_mute(text, ruleset=self.rules())
        if isinstance(parsed, str):
            return ActionOutcome(ok=False, changed=False, message=parsed)
        now = self.clock.now()
        silence = silences.add_mute(self.engine, user=user, now=now, **parsed)
        return ActionOutcome(ok=True, changed=True, message=self._muted(silence, now))

    def unmute(self, *, user: str, text: str) -> ActionOutcome:
        number = text.strip().lstrip("#")
        lifted = silences.lift_mute(self.engine, mute_id=int(number), user=user, now=self.clock.now()) \
            if number.isdigit() else None
        if lifted is None:
            return ActionOutcome(ok=False, changed=False, message=msg.SLACK_UNMUTE_UNKNOWN.format(id=number))
        return ActionOutcome(ok=True, changed=True, message=msg.SLACK_UNMUTED.format(id=number, what=lifted.label))

    def silences(self) -> list[SilenceLine]:
        with Session(self.engine) as s:
            found = silences.active_silences(s, ruleset=self.rules(), now=self.clock.now())
        return [SilenceLine(label=a.label, until=a.until, mute_id=a.id, created_by=a.created_by, comment=a.comment)
                for a in found]

    def _muted(self, silence: silences.ActiveSilence, now: datetime) -> str:
        until = silences.local_clock(silence.until, now=now, tz=self.timezone())
        return msg.SLACK_MUTED.format(what=silence.label, until=until, id=silence.id)

