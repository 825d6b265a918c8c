"""What the notifiers show, as plain data: the core builds it, a notifier renders it.

The same AlertView (and OpenCaseLine, one row of /mentions and the App Home) feeds the Slack Block Kit rendering and the console notifier,
so both say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.model import Case, Mention


@dataclass(frozen=True, slots=True)
class AlertView:
    case_id: int
    platform: str
    kind: str
    author_handle: str
    author_name: str
    author_followers: int
    author_verified: bool
    text: str  # customer text, RAW: every renderer must escape it
    url: str
    lang: str
    sentiment: float | None
    complaint: float
    categories: tuple[str, ...]
    rule: str
    severity: str
    state: str
    now: datetime
    sla_due_at: datetime | None
    sla_seconds: int = 0  # the whole target, so the colour can follow the share of time left
    timezone: str = "UTC"  # how deadlines are shown ("respond by 14:32")
    assignee: str = ""  # Slack user id of whoever claimed it
    snoozed_until: datetime | None = None
    ack_mode: str = "off"  # auto | approve | off
    ack_text: str = ""  # the exact public text "Acknowledge publicly" would post
    ack_posted: bool = False
    auto_acknowledged_at: datetime | None = None  # the bot acknowledged; no person has answered yet
    dry_run: bool = False
    history: bool = False  # opened by `backfill` from past posts: no countdown
    mention_count: int = 1
    breached: bool = False
    grouped_count: int = 0  # >0: this is a grouped message standing for that many cases
    members: tuple[OpenCaseLine, ...] = ()  # a grouped message's newest cases, newest first
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def time_left(self) -> timedelta | None:
        return None if self.sla_due_at is None else self.sla_due_at - self.now


def build_view(
    *, case: Case, mention: Mention, now: datetime, timezone: str = "UTC", ack_posted: bool = False
) -> AlertView:
    return AlertView(
        case_id=case.id or 0,
        platform=mention.platform,
        kind=mention.kind,
        author_handle=mention.author_handle or mention.author_name,  # Facebook people have a name, no handle
        author_name=mention.author_name,
        author_followers=mention.author_followers,
        author_verified=mention.author_verified,
        text=mention.text,
        url=mention.url,
        lang=mention.lang,
        sentiment=mention.sentiment,
        complaint=mention.complaint,
        categories=tuple(mention.categories or ()),
        rule=case.rule,
        severity=case.severity,
        state=case.state,
        now=now,
        sla_due_at=case.sla_due_at,
        sla_seconds=case.sla_seconds,
        timezone=timezone,
        assignee=case.assignee,
        snoozed_until=case.snoozed_until,
        ack_mode=case.ack_mode,
        ack_text=case.ack_text,
        ack_posted=ack_posted,
        auto_acknowledged_at=case.acknowledged_at if case.first_response_at is None else None,
        dry_run=case.dry_run,
        history=case.backfilled_at is not None,
        mention_count=case.mention_count,
        breached=case.breached_at is not None,
    )


@dataclass(frozen=True, slots=True)
class OpenCaseLine:
    """One open case as /mentions and the App Home list it."""

    case_id: int
    platform: str
    author_handle: str
    text: str
    rule: str
    severity: str
    sla_due_at: datetime | None
    assignee: str
    state: str
    alert_channel: str = ""
    alert_ref: str = ""
    sla_seconds: int = 0  # the whole target: lists colour the time left on the same scale as the alert


@dataclass(frozen=True, slots=True)
class ThreadLine:
    """One note in a thread, already worded and escaped; `member` when it stands for a case of a
    grouped message, whose buttons then come with the line."""

    text: str
    member: AlertView | None = None


@dataclass(frozen=True, slots=True)
class SilenceLine:
    """One silence in force as `/mentions mutes` and the App Home list it."""

    label: str  # "author @spammer", "keyword 'outage', rule possible-complaint"
    until: datetime
    mute_id: int | None = None  # a Slack mute's number (for `/mentions unmute`); None: from rules.yaml
    created_by: str = ""  # Slack user id
    comment: str = ""
