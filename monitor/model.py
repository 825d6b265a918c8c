"""Domain types and the SQLModel tables that store them.

`NewMention` is what a connector hands the core (plain data, no database);
the `table=True` classes are what the core stores.  All timestamps are UTC
and timezone-aware in Python; `UTCDateTime` keeps them so on SQLite too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC (SQLite has no time zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def naive_utc(value: datetime) -> datetime:
    """What a UTC column stores for an aware datetime (monitor.store.execute_many converts with it too)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class CaseState(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class OutboxKind(enum.StrEnum):
    ALERT = "alert"  # first Slack message of a case
    ALERT_UPDATE = "alert_update"  # chat.update of the case's alert
    THREAD = "thread"  # reply in the case's Slack thread
    CHANNEL = "channel"  # standalone Slack message (group, spike, escalation, ops, digest)
    REPLY_PUBLIC = "reply_public"  # public reply on the platform
    REPLY_PRIVATE = "reply_private"  # private reply / DM on the platform
    DIGEST = "digest"  # the scheduled digest: summary text and chart files (monitor/report/digest.py)


PUBLIC_KINDS = frozenset({OutboxKind.REPLY_PUBLIC, OutboxKind.REPLY_PRIVATE})


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # outcome of a public post cannot be known: a human decides
    CANCELLED = "cancelled"


# --------------------------------------------------------------------------- plain data


@dataclass(frozen=True, slots=True)
class Author:
    id: str
    handle: str = ""
    name: str = ""
    followers: int = 0
    verified: bool = False


@dataclass(frozen=True, slots=True)
class NewMention:
    """One post, comment or message as a connector fetched it."""

    platform: str
    kind: str
    external_id: str
    text: str
    author: Author
    created_at: datetime
    conversation_id: str = ""
    parent_id: str = ""
    url: str = ""
    lang_hint: str = ""  # the platform's own language guess, if any
    mentions_brand: bool = False  # the text @mentions the brand account
    from_brand: bool = False  # posted by the brand itself (a reply by the team)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Score:
    """What triage found in one text."""

    lang: str = "und"
    sentiment: float | None = None  # -1..1, None when the language cannot be scored
    complaint: float = 0.0  # probability 0..1
    categories: tuple[str, ...] = ()
    signals: tuple[str, ...] = ()  # human-readable reasons, shown by `explain`

    @property
    def is_complaint(self) -> bool:
        return self.complaint >= 0.5

    @property
    def negative(self) -> bool:
        return self.sentiment is not None and self.sentiment <= -0.05


# --------------------------------------------------------------------------- tables


class Mention(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("platform", "external_id", name="uq_mention_platform_external"),)

    id: int | None = Field(default=None, primary_key=True)
    # indexed: (platform, external_id) unique, created_at, case_id; no query reads mentions by conversation
    # or author, and each index costs every insert (revision 0006)
    platform: str
    kind: str
    source: str = ""
    external_id: str
    conversation_id: str = ""
    parent_id: str = ""
    author_id: str = ""
    author_handle: str = ""
    author_name: str = ""
    author_followers: int = 0
    author_verified: bool = False
    text: str = ""
    url: str = ""
    mentions_brand: bool = False
    from_brand: bool = False
    created_at: datetime | None = _ts(index=True)
    fetched_at: datetime | None = _ts()
    raw: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    # the Score, stored beside the mention it belongs to
    lang: str = "und"
    sentiment: float | None = None
    complaint: float = 0.0
    categories: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    rule: str = ""
    case_id: int | None = Field(default=None, index=True)

    @property
    def score(self) -> Score:
        return Score(
            lang=self.lang,
            sentiment=self.sentiment,
            complaint=self.complaint,
            categories=tuple(self.categories or ()),
        )


class Case(SQLModel, table=True):
    """One conversation that needs the team's attention."""

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    conversation_id: str = Field(index=True)
    author_id: str = Field(default="", index=True)
    author_handle: str = ""
    first_mention_id: int | None = None
    state: str = Field(default=CaseState.OPEN, index=True)
    rule: str = ""
    severity: str = "normal"
    channel: str = ""  # Slack channel id or name of the alert
    group_key: str = ""  # storm control: alerts sharing it may be grouped (searched by ix_case_group_window)
    grouped_into: int | None = None  # the case whose grouped message stands for this one
    opened_at: datetime | None = _ts()
    sla_seconds: int = 0
    sla_business_hours: bool = False
    sla_due_at: datetime | None = _ts(index=True)
    warned_at: datetime | None = _ts()
    breached_at: datetime | None = _ts()
    escalation_level: int = 0
    assignee: str = ""
    claimed_at: datetime | None = _ts()
    acknowledged_at: datetime | None = _ts()
    first_response_at: datetime | None = _ts()
    first_public_response_at: datetime | None = _ts()
    moved_to_dm: bool = False  # the customer really wrote in private after the hand-off
    customer_dm_at: datetime | None = _ts()  # their first private message after it
    # the customer's id in private when it is not author_id (Facebook: the Messenger PSID a private
    # reply to their comment returned); nullable, added in place to older databases
    private_author_id: str | None = Field(default=None, nullable=True, index=True)  # revision 0003
    ack_mode: str = "off"  # auto | approve | off, decided when the case opened
    ack_text: str = ""
    dry_run: bool = False
    # set when `backfill` opened it from history: it counts in reports, never warns, breaches or escalates
    backfilled_at: datetime | None = _ts()
    snoozed_until: datetime | None = _ts()
    resolved_at: datetime | None = _ts()
    last_mention_at: datetime | None = _ts()
    mention_count: int = 1
    alert_channel: str = ""
    alert_ref: str = ""
    countdown_step: str = ""  # fingerprint of the last rendering sent, to skip no-op updates


class Outbox(SQLModel, table=True):
    """A side effect, written in the same transaction as the change that causes it."""

    __table_args__ = (sa.Index("ix_outbox_due", "state", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    dedup_key: str = Field(unique=True)
    case_id: int | None = Field(default=None, index=True)
    mention_id: int | None = None
    author_id: str = Field(default="", index=True)  # the customer a platform reply goes to (cooldown lookups)
    platform: str = ""  # for platform replies; "slack" otherwise
    target: str = ""  # Slack channel, or the platform id replied to
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    state: str = Field(default=OutboxState.PENDING)
    attempts: int = 0
    created_at: datetime | None = _ts()
    next_attempt_at: datetime | None = _ts()
    claimed_by: str = ""
    claimed_until: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    error: str = ""


class Cursor(SQLModel, table=True):
    source: str = Field(primary_key=True)
    value: str = ""
    updated_at: datetime | None = _ts()


class Lease(SQLModel, table=True):
    name: str = Field(primary_key=True)
    holder: str = ""
    expires_at: datetime | None = _ts()


class SourceHealth(SQLModel, table=True):
    """How a source's polling goes: back-off, pauses, what the operator was told."""

    source: str = Field(primary_key=True)
    status: str = "ok"  # ok | rate_limited | backing_off | auth_failed
    retry_at: datetime | None = _ts()
    failures: int = 0
    last_success_at: datetime | None = _ts()
    last_error: str = ""
    operator_notified: bool = False
    quota_remaining: int | None = None
    quota_limit: int | None = None
    quota_reset_at: datetime | None = _ts()
    reads: int = 0  # API reads made by this source, all time (for the economy figures)


class Event(SQLModel, table=True):
    """The audit timeline of a case."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(index=True)
    at: datetime | None = _ts()
    kind: str
    actor: str = ""
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class Setting(SQLModel, table=True):
    """Small key/value facts the daemon keeps (schema version, last digest time)."""

    key: str = Field(primary_key=True)
    value: str = ""


class Mute(SQLModel, table=True):
    """A silence set from Slack (button or `/mentions mute`): mutes alerts until `until`."""

    id: int | None = Field(default=None, primary_key=True)
    author: str = ""  # @handle or platform id ("" = any author)
    keyword: str = ""
    rule: str = ""
    include_vip: bool = False
    comment: str = ""
    created_by: str = ""  # Slack user id
    created_at: datetime | None = _ts()
    until: datetime | None = _ts(index=True)
    lifted_at: datetime | None = _ts()  # `/mentions unmute`
    lifted_by: str = ""


class MutedMention(SQLModel, table=True):
    """A stored mention whose alert a silence muted: still stored, counted as muted."""

    mention_id: int = Field(primary_key=True)
    at: datetime | None = _ts(index=True)
    rule: str = ""  # the rule whose alert was muted
    silence: str = ""  # what muted it, as a person reads it ("author @spammer")
    mute_id: int | None = None  # the Slack mute; None for a rules.yaml silence
