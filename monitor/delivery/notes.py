"""Thread and channel notes: one payload type per NoteKind, worded at delivery time from a table.

Payloads hold facts (ids, numbers), not sentences, so the words come from the
catalogue and customer text is escaped by the notifier that will post it.  An outbox
row stores `Note.payload()` (JSON with a "note" key); `compose` reads it back.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from sqlmodel import Session

from connectors.base import Refused
from monitor import messages as msg
from monitor.model import Case, Mention

QUOTE_LIMIT = 600
RULES_ERROR_LIMIT = 300  # characters of one rules.yaml error quoted in #cs-ops
WORD_JOINER = "\u2060"


def _in_code_block(text: str) -> str:
    """Text that cannot close the ``` block it is quoted in (a rules value may hold backticks)."""
    return text.replace("`", "`" + WORD_JOINER)


def humanize(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 90:
        return f"{max(seconds, 0)} s" if seconds < 60 else "1 min"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def clock(when: datetime | None, timezone: str) -> str:
    if when is None:
        return "-"
    return when.astimezone(ZoneInfo(timezone)).strftime("%H:%M")


def day_clock(when: datetime, *, now: datetime, timezone: str) -> str:
    """14:32 today, "Wed 25 Nov 14:32" another day, in the team's time zone."""
    local, today = when.astimezone(ZoneInfo(timezone)), now.astimezone(ZoneInfo(timezone))
    return local.strftime("%H:%M") if local.date() == today.date() else local.strftime("%a %d %b %H:%M")


TimeRef = Callable[..., str]  # (when, fallback=...) -> how the notifier shows a time, e.g. Slack's <!date^...>


class NoteKind(enum.StrEnum):
    FOLLOWUP = "followup"
    REOPENED = "reopened"
    GROUP_MEMBER = "group_member"
    RESPONDED_ON_PLATFORM = "responded_on_platform"
    WARNING = "warning"
    BREACH = "breach"
    ESCALATION = "escalation"
    SNOOZE_OVER = "snooze_over"
    CLAIMED = "claimed"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    REPLY_QUEUED = "reply_queued"
    ACK_POSTED = "ack_posted"
    PRIVATE_POSTED = "private_posted"
    WOULD_POST = "would_post"
    WOULD_SEND_PRIVATE = "would_send_private"
    ACK_REFUSED = "ack_refused"
    PRIVATE_REFUSED = "private_refused"
    ACK_UNKNOWN = "ack_unknown"
    ACK_EXPIRED = "ack_expired"
    RULES_REFUSED = "rules_refused"
    ACK_APPROVAL = "ack_approval"
    ACK_COOLDOWN = "ack_cooldown"
    MESSENGER_WINDOW = "messenger_window"
    SPIKE = "spike"
    TEXT = "text"  # a sentence already worded from the catalogue (operator notes)


@dataclass(frozen=True, slots=True)
class Note:
    kind: ClassVar[NoteKind]

    def payload(self) -> dict[str, Any]:
        """What the outbox row stores (JSON)."""
        values = {name: getattr(self, name) for name in _field_names(type(self))}
        if not all(type(value) in _PLAIN for value in values.values()):
            values = dataclasses.asdict(self)  # copies what is nested; a plain value it returns as it is
        return {"note": str(self.kind), **values}


_PLAIN = frozenset({str, int, float, bool, type(None)})
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


@dataclass(frozen=True, slots=True)
class Followup(Note):
    kind = NoteKind.FOLLOWUP
    mention_id: int
    broadcast: bool = False  # also shown in the channel: the follow-up needs attention
    private: bool = False  # a DM / Messenger message continuing a public case: marked, never broadcast


@dataclass(frozen=True, slots=True)
class Reopened(Note):
    kind = NoteKind.REOPENED
    mention_id: int
    broadcast: bool = True
    private: bool = False


@dataclass(frozen=True, slots=True)
class GroupMember(Note):
    kind = NoteKind.GROUP_MEMBER
    member_case_id: int
    mention_id: int


@dataclass(frozen=True, slots=True)
class RespondedOnPlatform(Note):
    kind = NoteKind.RESPONDED_ON_PLATFORM
    mention_id: int


@dataclass(frozen=True, slots=True)
class SlaWarning(Note):
    kind = NoteKind.WARNING
    case_id: int
    who: list[str] = field(default_factory=list)
    percent: int = 75


@dataclass(frozen=True, slots=True)
class Breach(Note):
    kind = NoteKind.BREACH
    case_id: int
    who: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Escalation(Note):
    kind = NoteKind.ESCALATION
    case_id: int
    step: int = 1
    who: list[str] = field(default_factory=list)
    permalink: str = ""


@dataclass(frozen=True, slots=True)
class SnoozeOver(Note):
    kind = NoteKind.SNOOZE_OVER
    case_id: int = 0


@dataclass(frozen=True, slots=True)
class TeamAction(Note):
    """Claimed, acknowledged, snoozed, resolved: who did it (and until when, for a snooze)."""

    kind = NoteKind.CLAIMED  # the family; `action` says which one
    action: NoteKind = NoteKind.CLAIMED
    user: str = ""
    until: str = ""  # ISO time, snoozes only
    text: str = ""  # the acknowledgement text, when the approver edited it

    def payload(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {"note": str(values.pop("action")), **values}


@dataclass(frozen=True, slots=True)
class ReplyQueued(Note):
    kind = NoteKind.REPLY_QUEUED
    user: str
    text: str
    private: bool = False  # an answer in the customer's DM / Messenger conversation


@dataclass(frozen=True, slots=True)
class AckPosted(Note):
    kind = NoteKind.ACK_POSTED
    text: str
    lang: str = ""
    dm_link: str = ""


@dataclass(frozen=True, slots=True)
class PrivatePosted(Note):
    kind = NoteKind.PRIVATE_POSTED
    text: str
    platform: str = ""  # where the private message went (stored as "kind" by older rows)


@dataclass(frozen=True, slots=True)
class WouldPost(Note):
    kind = NoteKind.WOULD_POST
    text: str
    lang: str = ""


@dataclass(frozen=True, slots=True)
class WouldSendPrivate(Note):
    kind = NoteKind.WOULD_SEND_PRIVATE
    text: str
    lang: str = ""


@dataclass(frozen=True, slots=True)
class AckRefused(Note):
    kind = NoteKind.ACK_REFUSED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PrivateRefused(Note):
    kind = NoteKind.PRIVATE_REFUSED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AckUnknown(Note):
    kind = NoteKind.ACK_UNKNOWN
    platform: str = ""
    link: str = ""


@dataclass(frozen=True, slots=True)
class AckExpired(Note):
    """An automatic acknowledgement that could not go out before its case's response target."""

    kind = NoteKind.ACK_EXPIRED
    due: str  # ISO time it expired at
    platform: str = ""
    text: str = ""
    held: str = ""  # ISO time the platform's limit held it until, if that was the reason


@dataclass(frozen=True, slots=True)
class RulesRefused(Note):
    """A refused rules.yaml edit, for the ops channel: the first errors and how many more."""

    kind = NoteKind.RULES_REFUSED
    errors: list[str] = field(default_factory=list)
    more: int = 0


@dataclass(frozen=True, slots=True)
class AckApproval(Note):
    kind = NoteKind.ACK_APPROVAL
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AckCooldown(Note):
    kind = NoteKind.ACK_COOLDOWN
    mention_id: int
    ago: str = ""


@dataclass(frozen=True, slots=True)
class MessengerWindow(Note):
    kind = NoteKind.MESSENGER_WINDOW


@dataclass(frozen=True, slots=True)
class Spike(Note):
    kind = NoteKind.SPIKE
    count: int
    window: str
    mean: float
    sigma: float
    topics: list[list[Any]] = field(default_factory=list)  # [[category, count], ...], most first
    example_ids: list[int] = field(default_factory=list)  # mention ids of posts that show what it is about


@dataclass(frozen=True, slots=True)
class Text(Note):
    kind = NoteKind.TEXT
    text: str


_TEAM_ACTIONS = (NoteKind.CLAIMED, NoteKind.ACKNOWLEDGED, NoteKind.SNOOZED, NoteKind.RESOLVED)
PAYLOAD_TYPES: dict[NoteKind, type[Note]] = {
    **{t.kind: t for t in (
        Followup, Reopened, GroupMember, RespondedOnPlatform, SlaWarning, Breach, Escalation, SnoozeOver, ReplyQueued,
        AckPosted, PrivatePosted, WouldPost, WouldSendPrivate, AckRefused, PrivateRefused, AckUnknown, AckApproval,
        AckCooldown, AckExpired, RulesRefused, MessengerWindow, Spike, Text)},
    **dict.fromkeys(_TEAM_ACTIONS, TeamAction),
}


def team_action(action: str, *, user: str, **details: Any) -> TeamAction:
    return TeamAction(action=NoteKind(action), user=user, **details)


def parse(payload: dict[str, Any]) -> Note:
    """The typed note an outbox payload holds (rows without a "note" key are worded text)."""
    try:
        kind = NoteKind(payload.get("note") or NoteKind.TEXT)
    except ValueError:
        raise Refused(msg.NOTE_UNKNOWN_KIND.format(kind=payload.get("note"))) from None
    cls = PAYLOAD_TYPES[kind]
    values = dict(payload)
    if kind == NoteKind.PRIVATE_POSTED and "platform" not in values:
        values["platform"] = values.get("kind", "")
    names = {f.name for f in dataclasses.fields(cls)}
    args = {k: v for k, v in values.items() if k in names}
    if cls is TeamAction:
        args["action"] = kind
    try:
        return cls(**args)
    except TypeError as exc:  # a required fact is missing: say so rather than post an empty message
        raise Refused(msg.NOTE_BAD_PAYLOAD.format(kind=kind, detail=exc)) from None


@dataclass(slots=True)
class _Context:
    session: Session
    escape: Callable[[str], str]
    now: datetime
    timezone: str
    mention_user: Callable[[str], str] = str  # the notifier's: names a team member so they are notified
    time_ref: TimeRef | None = None
    # the note's case and its author, named in a thread several cases share (0: not named)
    case_id: int = 0
    case_author: str = ""

    def at(self, when: datetime | None) -> str:
        """A time as each reader should see it: the notifier's own form (Slack: in their time zone)."""
        if when is None:
            return "-"
        shown = day_clock(when, now=self.now, timezone=self.timezone)
        return self.time_ref(when, fallback=shown) if self.time_ref is not None else shown

    def mention(self, mention_id: int | None) -> Mention | None:
        return self.session.get(Mention, mention_id) if mention_id else None

    def case(self, case_id: int | None) -> Case | None:
        return self.session.get(Case, case_id) if case_id else None

    def quote(self, mention: Mention | None) -> tuple[str, str]:
        """(author, quoted text) of a mention, escaped."""
        if mention is None:
            return "", ""
        text = mention.text if len(mention.text) <= QUOTE_LIMIT else mention.text[:QUOTE_LIMIT] + "…"
        return (self.escape("@" + mention.author_handle if mention.author_handle else mention.author_name),
                self.escape(text))


def _followup(n: Followup, c: _Context) -> str:
    author, quote = c.quote(c.mention(n.mention_id))
    if n.private:
        return msg.THREAD_PRIVATE_FOLLOWUP.format(author=author, quote=quote)
    template = msg.THREAD_FOLLOWUP_ATTENTION if n.broadcast else msg.THREAD_FOLLOWUP
    return template.format(author=author, quote=quote)


def _reopened(n: Reopened, c: _Context) -> str:
    author, quote = c.quote(c.mention(n.mention_id))
    template = msg.THREAD_PRIVATE_REOPENED if n.private else msg.THREAD_REOPENED
    return template.format(author=author, quote=quote)


def _group_member(n: GroupMember, c: _Context) -> str:
    mention = c.mention(n.mention_id)
    author, quote = c.quote(mention)
    case = c.case(n.member_case_id)
    severity = case.severity if case else ""
    return msg.THREAD_GROUP_MEMBER.format(case_id=n.member_case_id, author=author, quote=quote,
                                          platform=mention.platform if mention else "", severity=severity,
                                          mark=msg.SLACK_SEVERITY_MARKS.get(severity, "")).strip()


def _responded(n: RespondedOnPlatform, c: _Context) -> str:
    mention = c.mention(n.mention_id)
    ago = humanize(c.now - mention.created_at) + " ago" if mention and mention.created_at else ""
    return msg.THREAD_RESPONDED_ON_PLATFORM.format(platform=mention.platform if mention else "", ago=ago)


def _warning(n: SlaWarning, c: _Context) -> str:
    case = c.case(n.case_id)
    left = case.sla_due_at - c.now if case and case.sla_due_at else timedelta(0)
    return msg.THREAD_WARNING.format(who=_who(n.who, c), left=humanize(left), percent=n.percent)


def _breach(n: Breach, c: _Context) -> str:
    case = c.case(n.case_id)
    return msg.THREAD_BREACH.format(who=_who(n.who, c), due=c.at(case.sla_due_at if case else None))


def _escalation(n: Escalation, c: _Context) -> str:
    case = c.case(n.case_id)
    late = c.now - case.sla_due_at if case and case.sla_due_at else timedelta(0)
    link = msg.ESCALATION_LINK.format(permalink=n.permalink) if n.permalink else ""
    return msg.ESCALATION_POST.format(
        who=_who(n.who, c), step=n.step, case_id=n.case_id, rule=case.rule if case else "",
        author=c.escape(case.author_handle) if case else "", platform=case.platform if case else "",
        late=humanize(late), link=link,
    ).strip()


_TEAM_TEMPLATES = {NoteKind.CLAIMED: msg.THREAD_CLAIMED, NoteKind.ACKNOWLEDGED: msg.THREAD_ACKNOWLEDGED,
                   NoteKind.SNOOZED: msg.THREAD_SNOOZED, NoteKind.RESOLVED: msg.THREAD_RESOLVED}
_TEAM_TEMPLATES_NAMED = {NoteKind.CLAIMED: msg.THREAD_CLAIMED_CASE, NoteKind.ACKNOWLEDGED: msg.THREAD_ACKNOWLEDGED_CASE,
                         NoteKind.SNOOZED: msg.THREAD_SNOOZED_CASE, NoteKind.RESOLVED: msg.THREAD_RESOLVED_CASE}


def _team_action(n: TeamAction, c: _Context) -> str:
    until = c.at(datetime.fromisoformat(n.until)) if n.until else ""
    if c.case_id:
        return _TEAM_TEMPLATES_NAMED[n.action].format(user=c.mention_user(n.user), until=until, case_id=c.case_id,
                                                      author=c.case_author)
    return _TEAM_TEMPLATES[n.action].format(user=c.mention_user(n.user), until=until)


def _ack_posted(n: AckPosted, c: _Context) -> str:
    dm = msg.THREAD_ACK_DM.format(link=n.dm_link) if n.dm_link else ""
    return msg.THREAD_ACK_POSTED.format(lang=n.lang, text=c.escape(n.text), dm=dm)


def _ack_cooldown(n: AckCooldown, c: _Context) -> str:
    author, _ = c.quote(c.mention(n.mention_id))
    return msg.THREAD_ACK_COOLDOWN.format(author=author, ago=n.ago)


def _ack_expired(n: AckExpired, c: _Context) -> str:
    if n.held:
        platform = n.platform.upper() if n.platform == "x" else n.platform
        reason = msg.THREAD_ACK_EXPIRED_HELD.format(
            platform=platform, until=day_clock(datetime.fromisoformat(n.held), now=c.now, timezone=c.timezone))
    else:
        reason = msg.THREAD_ACK_EXPIRED_LATE
    return msg.THREAD_ACK_EXPIRED.format(
        reason=reason, due=day_clock(datetime.fromisoformat(n.due), now=c.now, timezone=c.timezone),
        text=c.escape(n.text))


def _rules_refused(n: RulesRefused, c: _Context) -> str:
    errors = "\n".join(_in_code_block(c.escape(error[:RULES_ERROR_LIMIT])) for error in n.errors)
    more = msg.RULES_MORE_ERRORS.format(count=f"{n.more:,}") if n.more else ""
    return msg.OPS_RULES_REFUSED.format(errors=errors) + more


SPIKE_EXAMPLE_LIMIT = 200


def _spike(n: Spike, c: _Context) -> str:
    text = msg.SPIKE_ALERT.format(count=n.count, window=n.window, mean=n.mean, sigma=n.sigma)
    if n.topics:
        text += msg.SPIKE_TOPICS.format(topics=", ".join(
            msg.SPIKE_TOPIC.format(category=c.escape(str(category)), count=count) for category, count in n.topics))
    for mention_id in n.example_ids:
        mention = c.mention(mention_id)
        if mention is None:
            continue
        author, _ = c.quote(mention)
        flat = " ".join(mention.text.split())
        quote = c.escape(flat if len(flat) <= SPIKE_EXAMPLE_LIMIT else flat[:SPIKE_EXAMPLE_LIMIT] + "…")
        text += msg.SPIKE_EXAMPLE.format(author=author, quote=quote)
    return text


def _who(who: list[str], c: _Context) -> str:
    return " ".join(c.mention_user(w) for w in who)


Renderer = Callable[[Any, _Context], str]
RENDERERS: dict[NoteKind, Renderer] = {
    NoteKind.FOLLOWUP: _followup,
    NoteKind.REOPENED: _reopened,
    NoteKind.GROUP_MEMBER: _group_member,
    NoteKind.RESPONDED_ON_PLATFORM: _responded,
    NoteKind.WARNING: _warning,
    NoteKind.BREACH: _breach,
    NoteKind.ESCALATION: _escalation,
    NoteKind.SNOOZE_OVER: lambda n, c: msg.THREAD_SNOOZE_OVER,
    **dict.fromkeys(_TEAM_ACTIONS, _team_action),
    NoteKind.REPLY_QUEUED: lambda n, c: (msg.THREAD_REPLY_DM_QUEUED if n.private else msg.THREAD_REPLY_QUEUED).format(
        user=c.mention_user(n.user), text=c.escape(n.text)),
    NoteKind.ACK_POSTED: _ack_posted,
    NoteKind.PRIVATE_POSTED: lambda n, c: msg.THREAD_PRIVATE_POSTED.format(kind=n.platform, text=c.escape(n.text)),
    NoteKind.WOULD_POST: lambda n, c: msg.THREAD_WOULD_POST.format(lang=n.lang, text=c.escape(n.text)),
    NoteKind.WOULD_SEND_PRIVATE: lambda n, c: msg.THREAD_WOULD_SEND_PRIVATE.format(text=c.escape(n.text)),
    NoteKind.ACK_REFUSED: lambda n, c: msg.THREAD_ACK_REFUSED.format(reason=c.escape(n.reason)),
    NoteKind.PRIVATE_REFUSED: lambda n, c: msg.THREAD_PRIVATE_REFUSED.format(reason=c.escape(n.reason)),
    NoteKind.ACK_UNKNOWN: lambda n, c: msg.THREAD_ACK_UNKNOWN.format(platform=n.platform, link=n.link),
    NoteKind.ACK_APPROVAL: lambda n, c: msg.THREAD_ACK_APPROVAL.format(reason=n.reason),
    NoteKind.ACK_COOLDOWN: _ack_cooldown,
    NoteKind.ACK_EXPIRED: _ack_expired,
    NoteKind.RULES_REFUSED: _rules_refused,
    NoteKind.MESSENGER_WINDOW: lambda n, c: msg.THREAD_MESSENGER_WINDOW,
    NoteKind.SPIKE: _spike,
    NoteKind.TEXT: lambda n, c: n.text,
}


_NAMES_ITS_CASE = frozenset({NoteKind.GROUP_MEMBER, *_TEAM_ACTIONS})


def case_author(case: Case, *, escape: Callable[[str], str]) -> str:
    """The customer of a case as a note in a shared thread names them: "@anna" on X."""
    handle = case.author_handle or ""
    if case.platform == "x" and handle and not handle.startswith("@"):
        handle = "@" + handle
    return escape(handle)


def compose(
    session: Session, payload: dict[str, Any], *, escape: Callable[[str], str], mention_user: Callable[[str], str],
    now: datetime, timezone: str, time_ref: TimeRef | None = None, case: Case | None = None,
) -> str:
    """The words of the note an outbox payload holds (raises Refused for a payload it cannot word).
    `case`: the note's case when its thread is a grouped message's, shared by several cases; then
    every note says which case it is about."""
    note = parse(payload)
    kind = note.action if isinstance(note, TeamAction) else note.kind
    context = _Context(session=session, escape=escape, mention_user=mention_user, now=now, timezone=timezone,
                       time_ref=time_ref)
    if case is not None and case.id is not None:
        context.case_id, context.case_author = case.id, case_author(case, escape=escape)
    text = RENDERERS[kind](note, context)
    if context.case_id and kind not in _NAMES_ITS_CASE:
        text = msg.THREAD_CASE_PREFIX.format(case_id=context.case_id, author=context.case_author, text=text)
    return text
