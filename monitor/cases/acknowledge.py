"""Public acknowledgements that move the talk to DMs: within each platform's rules, never twice.

`plan` decides, when a case opens, whether its acknowledgement is posted at once
(auto), waits behind a Slack button (approve), or not at all, and queues it.
`ReplyDeliverer` posts queued replies at most once: a retry first asks the
platform whether the last attempt landed, and a reply whose fate cannot be
known is marked `unknown` and handed to a person in the case's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from connectors.base import (
    AuthFailed,
    ConnectorError,
    RateLimited,
    RefusalReason,
    Refused,
    ReplyResult,
    ReplyTarget,
    Source,
    Transient,
)
from connectors.platforms import PLATFORMS, is_private
from monitor import messages as msg
from monitor.delivery import notes, outbox
from monitor.delivery.notes import humanize
from monitor.model import Case, CaseState, Event, Mention, Outbox, OutboxKind, OutboxState
from monitor.retry import REPLIES
from monitor.rules import render_template
from monitor.rules.schema import Ruleset
from monitor.sanitize import addressable_handle, addressable_name
from monitor.store import select_rows

if TYPE_CHECKING:
    from monitor.cases.pipeline import CaseRow, MentionRow, ReplyPolicy

log = logging.getLogger(__name__)

AUTO_ACK_EXPIRY = timedelta(hours=1)  # an automatic acknowledgement of a case without a response target
RECONCILE_ATTEMPTS = 8  # look-ups that may be put off by rate limits or outages before a person is asked


@dataclass(frozen=True, slots=True)
class Plan:
    mode: str  # what will happen: auto | approve | off
    text: str
    lang: str
    queued: bool
    reason: str = ""


def render(ruleset: Ruleset, *, template: str, mention: Mention | MentionRow, policy: ReplyPolicy,
           agent: str = "") -> tuple[str, str]:
    dm_link = policy.dm_link if (policy is not None and ruleset.acknowledgement.dm_link
                                 and ruleset.acknowledgement.allow_urls) else ""
    # {author} is how the platform addresses a person: @handle on X, the display name on Facebook;
    # customer-chosen text, so only a valid handle or a name that reads as one is repeated
    author = addressable_handle(mention.author_handle) if mention.author_handle \
        else addressable_name(mention.author_name)
    return render_template(ruleset, template=template, lang=mention.lang, values={
        "author": author, "brand": ruleset.brand.name, "eta": "", "agent": agent, "dm_link": dm_link})


# Variants of a rule's template, picked by what really happens (docs/rules.md, "Templates"):
DM_SENT_SUFFIX = "_dm_sent"  # the public reply when a private message really goes out with it
MESSAGE_SUFFIX = "_message"  # the answer to a private message (Messenger): no comment, no hand-off


def sends_dm(*, policy: ReplyPolicy, mention: Mention | MentionRow, private_template: str | None) -> bool:
    """Whether a private message goes out beside the public reply (a Facebook private reply to a comment).
    On X the reply only carries a link to write to us: X lets a brand DM only people who allow it."""
    return bool(private_template) and policy is not None and mention.kind in policy.private_kinds


def template_for(ruleset: Ruleset, *, template: str, mention: Mention | MentionRow, dm_sent: bool) -> str | None:
    """The template whose words are true for this mention; None when there is nothing true to say."""
    if is_private(mention.kind):
        name = template + MESSAGE_SUFFIX
        return name if name in ruleset.templates else None
    if dm_sent and template + DM_SENT_SUFFIX in ruleset.templates:
        return template + DM_SENT_SUFFIX
    return template


def plan(
    session: Session, *, ruleset: Ruleset, case: CaseRow, mention: MentionRow, mode: str, template: str | None,
    policy: ReplyPolicy, now: datetime, dry_run: bool, private_template: str | None = None,
) -> Plan:
    if template:
        template = template_for(ruleset, template=template, mention=mention,
                                dm_sent=sends_dm(policy=policy, mention=mention, private_template=private_template))
    if not template:
        return Plan(mode="off", text="", lang="", queued=False)
    text, lang = render(ruleset, template=template, mention=mention, policy=policy)
    case.ack_text = text
    reason = ""
    if mode == "auto":
        reason = auto_refusal(policy=policy, mention=mention, text=text)
        if reason:
            mode = "approve"
    cooldown_ago = recent_ack_for_author(session, platform=mention.platform, author_id=mention.author_id,
                                         since=now - ruleset.acknowledgement.cooldown)
    assert case.id is not None
    if cooldown_ago is not None:
        case.ack_mode = "off"
        outbox.add(session, kind=OutboxKind.THREAD, dedup_key=f"ack_cooldown:{case.id}", case_id=case.id,
                   mention_id=mention.id, target=case.channel, now=now,
                   payload=notes.AckCooldown(mention_id=mention.id, ago=_ago(now - cooldown_ago)).payload())
        return Plan(mode="off", text=text, lang=lang, queued=False, reason="cooldown")
    case.ack_mode = mode
    if mode == "approve":
        if reason:
            outbox.add(session, kind=OutboxKind.THREAD, dedup_key=f"ack_approval:{case.id}", case_id=case.id,
                       target=case.channel, now=now, payload=notes.AckApproval(reason=reason).payload())
        return Plan(mode=mode, text=text, lang=lang, queued=False, reason=reason)
    queued = queue(session, case=case, mention=mention, text=text, lang=lang, policy=policy, now=now,
                   dry_run=dry_run, actor="auto", ruleset=ruleset, private_template=private_template)
    return Plan(mode=mode, text=text, lang=lang, queued=queued)


def auto_refusal(*, policy: ReplyPolicy, mention: Mention | MentionRow, text: str) -> str:
    """Why the platform would not let the bot post this unprompted ("" if it would)."""
    if policy is None:
        return f"no {mention.platform} connector can reply"
    if mention.kind not in policy.auto_reply_kinds:
        return f"{mention.platform} does not allow automatic replies to {mention.kind} posts"
    if policy.requires_brand_mention and not mention.mentions_brand:
        return f"{mention.platform} allows automatic replies only to posts that mention the brand"
    return policy.length_refusal(kind=mention.kind, text=text)


def _ack_rows(since: Any) -> Any:
    """The newest acknowledgement per (platform, author) queued since `since`.  `|| ''`: for a page's authors
    SQLite searched the reply-window index by kind alone (every acknowledgement ever queued, 3-10 ms a page
    at 20,000 mentions) or the due index by state; kept off both, it searches the author index."""
    return select(Outbox.platform, Outbox.author_id, sa.func.max(Outbox.created_at)).where(
        Outbox.kind.concat("").in_([OutboxKind.REPLY_PUBLIC, OutboxKind.REPLY_PRIVATE]),
        Outbox.dedup_key.startswith(outbox.ACK_PREFIX),
        Outbox.state.concat("").in_([OutboxState.PENDING, OutboxState.SENDING, OutboxState.SENT,
                                     OutboxState.UNKNOWN]),
        Outbox.created_at >= since,
    ).group_by(Outbox.platform, Outbox.author_id)


# The same for a page's author ids (prefetch_recent_acks), built once: a page pays neither building it nor
# its cache key.  The platform is checked in Python: a row-value IN beside it doubled the query's cost.
_RECENT_ACKS = _ack_rows(sa.bindparam("since")).where(Outbox.author_id.in_(sa.bindparam("authors", expanding=True)))


def recent_ack_for_author(session: Session, *, platform: str, author_id: str, since: datetime) -> datetime | None:
    """When we last queued an acknowledgement to this customer, if on or after `since`."""
    batch = outbox.current_batch(session)
    if batch is None:
        row = session.exec(_ack_rows(since).where(Outbox.platform == platform, Outbox.author_id == author_id)).first()
        last = row[2] if row is not None else None
    else:  # inside an ingest: the batch knows (no query when the page's authors were prefetched)
        if (platform, author_id) not in batch.known_authors:
            prefetch_recent_acks(session, authors=[(platform, author_id)], since=since)
        last = batch.last_ack.get((platform, author_id))
    return last if last is not None and last >= since else None


def prefetch_recent_acks(session: Session, *, authors: Iterable[tuple[str, str]], since: datetime) -> None:
    """Read the cooldown state of a page's authors in one query per 500 (for recent_ack_for_author)."""
    batch = outbox.current_batch(session)
    if batch is None:  # a programming error, checked also under -OO (monitor/launch.py)
        raise RuntimeError("prefetch_recent_acks needs an outbox batch")
    wanted = sorted(set(authors) - batch.known_authors)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        asked = set(chunk)
        params = {"since": since, "authors": sorted({author for _, author in chunk})}
        for platform, author_id, at in select_rows(session, _RECENT_ACKS, params):
            key = (platform, author_id)
            if key in asked:  # the same id on another platform is another person
                batch.last_ack[key] = max(at, batch.last_ack.get(key, at))
        batch.known_authors.update(chunk)


def queue(
    session: Session, *, case: Case | CaseRow, mention: Mention | MentionRow, text: str, lang: str, policy: ReplyPolicy,
    now: datetime, dry_run: bool, actor: str, ruleset: Ruleset, private_template: str | None = None,
) -> bool:
    """Queue the public acknowledgement (at most one per conversation) and its private follow-up."""
    assert case.id is not None
    base = {"target": target_payload(mention), "lang": lang, "dry_run": dry_run, "actor": actor, "author_id": mention.author_id}
    # A private conversation (Messenger, DM) has no public side: the acknowledgement is the private answer.
    kind = OutboxKind.REPLY_PRIVATE if is_private(mention.kind) else OutboxKind.REPLY_PUBLIC
    queued = outbox.add(
        session, kind=kind, dedup_key=ack_key(mention),
        case_id=case.id, mention_id=mention.id, platform=mention.platform, target=mention.external_id,
        payload={**base, "text": text}, now=now, author_id=mention.author_id)
    if queued and kind == OutboxKind.REPLY_PUBLIC and private_template \
            and sends_dm(policy=policy, mention=mention, private_template=private_template):
        private_text, _ = render(ruleset, template=private_template, mention=mention, policy=policy)
        outbox.add(session, kind=OutboxKind.REPLY_PRIVATE, dedup_key=f"private:{mention.platform}:{mention.external_id}",
                   case_id=case.id, mention_id=mention.id, platform=mention.platform, target=mention.external_id,
                   payload={**base, "text": private_text}, now=now, author_id=mention.author_id)
    if queued:
        outbox.add_event(session, case_id=case.id, at=now, kind="ack_queued", actor=actor, detail={"lang": lang})
    return queued


def _reworded(row: Outbox, *, target: ReplyTarget) -> str | None:
    """A refused repeat's text with its case reference, " (#<case id>)"; None when it was reworded once already or
    the reference would take it over the platform's length limit."""
    payload = row.payload
    platform = PLATFORMS.get(row.platform)
    if payload.get("reworded") or row.case_id is None or platform is None:
        return None
    text = f"{payload['text']} (#{row.case_id})"
    return None if platform.too_long(kind=target.kind, text=text) is not None else text


def ack_key(mention: Mention | MentionRow) -> str:
    """At most one acknowledgement per customer per conversation (two customers complaining under
    the same Facebook post or X thread each get theirs)."""
    return f"ack:{mention.platform}:{mention.conversation_id}:{mention.author_id}"


# ReplyTarget's fields in order, with their defaults: its JSON for an outbox row without building one
# and deep-copying it (`asdict`)
_TARGET_FIELDS = {f.name: None if f.default is MISSING else f.default for f in fields(ReplyTarget)}


def target_payload(mention: Mention | MentionRow) -> dict[str, Any]:
    """The ReplyTarget of a stored mention, as JSON for an outbox row."""
    target = _TARGET_FIELDS.copy()
    target.update(
        platform=mention.platform, kind=mention.kind, external_id=mention.external_id, author_id=mention.author_id,
        author_handle=mention.author_handle, conversation_id=mention.conversation_id, parent_id=mention.parent_id,
        created_at=mention.created_at.isoformat() if mention.created_at else None,
        mentions_brand=mention.mentions_brand)
    return target


def _ago(delta: timedelta) -> str:
    return "just now" if delta.total_seconds() < 60 else humanize(delta) + " ago"


class ReplyDeliverer:
    """Posts queued platform replies, at most once each."""

    def __init__(self, *, engine: Engine, sources: Mapping[str, Source], worker: str) -> None:
        self.engine = engine
        self.sources = sources
        self.worker = worker
        # (platform, outbox kind) -> when its create limit resets: learnt from a 429 or from a
        # success that left 0, so that a queue of replies costs no further refused requests; kept
        # in the database too (outbox.keep_hold), so a restart or another replica waits as well
        self.held: dict[tuple[str, str], datetime] = {}

    def _held(self, platform: str, kind: str, *, now: datetime) -> datetime | None:
        known = self.held.get((platform, kind))
        if known is not None and known > now:
            return known
        kept = outbox.hold_until(self.engine, name=f"{outbox.REPLY_HOLD_PREFIX}{platform}:{kind}", now=now)
        if kept is not None:
            self.held[(platform, kind)] = kept
            return kept
        return known

    def _hold(self, platform: str, kind: str, *, until: datetime, error: str) -> None:
        self.held[(platform, kind)] = until
        outbox.keep_hold(self.engine, name=f"{outbox.REPLY_HOLD_PREFIX}{platform}:{kind}", until=until, error=error)

    def deliver(self, item: outbox.Claimed, *, now: datetime) -> str:
        row = item.row
        payload = row.payload
        target_fields = dict(payload["target"])
        created = target_fields.get("created_at")
        target_fields["created_at"] = datetime.fromisoformat(created) if created else None
        target = ReplyTarget(**target_fields)
        private = row.kind == OutboxKind.REPLY_PRIVATE
        if payload.get("dry_run"):
            self._done(row, now=now, result=None, dry_run=True, private=private)
            return "sent"
        source = self.sources.get(row.platform)
        if source is None:
            self._give_up(row, now=now, reason=f"no {row.platform} connector is configured", private=private)
            return "failed"
        held = self._held(row.platform, row.kind, now=now)
        first = row.attempts <= 1 and not item.recovering
        never_posted = first or bool(row.result.get("not_posted"))
        expires = self._expires_at(row) if payload.get("actor") == "auto" and never_posted else None
        if expires is not None and (now >= expires or (held is not None and held > expires)):
            self._expire(row, now=now, expired_at=expires, held=held if held is not None and held > now else None)
            return "failed"
        if held is not None and now < held:
            # Not tried now, so nothing new is unknown: a first attempt is known not posted; an
            # earlier attempt's state (and any look-up it needs) is kept for when the limit resets.
            outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.PENDING, retry_at=held,
                          error=msg.REPLY_LIMIT_HELD.format(platform=row.platform, until=held.isoformat()),
                          result={"not_posted": True} if first else None)
            return "retried"
        # The outcome of the last attempt is unknown after a crash or a timeout; a rate limit or a
        # rejected token answered before anything was posted, so no look-up is needed then.
        unsure = item.recovering or (row.attempts > 1 and not row.result.get("not_posted"))
        if unsure:
            try:
                found = source.find_reply(target=target, text=payload["text"])
            except (RateLimited, Transient) as exc:
                if row.attempts < RECONCILE_ATTEMPTS:  # cannot ask yet: ask again later, post nothing
                    retry_at = exc.until if isinstance(exc, RateLimited) else now + REPLIES.delay(row.attempts + 1)
                    outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.PENDING,
                                  retry_at=retry_at, error=str(exc))
                    return "retried"
                log.warning("outbox %s #%d: cannot tell whether it was posted: %s", row.kind, row.id, exc)
                self._unknown(row, now=now, target=target)
                return "unknown"
            except ConnectorError as exc:
                log.warning("outbox %s #%d: cannot tell whether it was posted: %s", row.kind, row.id, exc)
                self._unknown(row, now=now, target=target)
                return "unknown"
            if found is not None:
                self._done(row, now=now, result=found, dry_run=False, private=private)
                return "sent"
        try:
            if private:
                result = source.send_private(target=target, text=payload["text"])
            else:
                result = source.reply_public(target=target, text=payload["text"])
        except (RateLimited, AuthFailed) as exc:
            # refused before anything was posted: the retry posts without a look-up first
            retry_at = exc.until if isinstance(exc, RateLimited) else now + REPLIES.delay(row.attempts + 1)
            if isinstance(exc, RateLimited):
                self._hold(row.platform, row.kind, until=exc.until, error=str(exc))
                if expires is not None and exc.until > expires:
                    self._expire(row, now=now, expired_at=expires, held=exc.until)
                    return "failed"
            outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.PENDING,
                          retry_at=retry_at, error=str(exc), result={"not_posted": True})
            return "retried"
        except Transient as exc:
            # A timeout may hide a post that landed: the next attempt reconciles first.
            outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.PENDING,
                          retry_at=now + REPLIES.delay(row.attempts + 1), error=str(exc), result={})
            return "retried"
        except (Refused, ConnectorError) as exc:
            code = exc.reason if isinstance(exc, Refused) else None
            if private and unsure and code == RefusalReason.ALREADY_REPLIED:
                # Our previous attempt landed and only its answer was lost (a private reply cannot be
                # looked up): the platform's "already replied" is that message, so it was sent.
                log.info("outbox %s #%d: the earlier attempt was delivered (%s)", row.kind, row.id, exc)
                self._done(row, now=now, result=ReplyResult(external_id=""), dry_run=False, private=private)
                return "sent"
            reworded = _reworded(row, target=target) if code == RefusalReason.DUPLICATE_TEXT else None
            if reworded is not None:
                # X refuses a text the account posted before (the same customer acknowledged again after the
                # cooldown, or a greeting without a name): nothing was posted, so the case's reference makes
                # the text its own and the next attempt posts it; the thread note shows the text posted
                log.info("outbox %s #%d: %s; posting it with the case reference", row.kind, row.id, exc)
                outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.PENDING,
                              retry_at=now, error=str(exc), result={"not_posted": True},
                              payload={**payload, "text": reworded, "reworded": True})
                return "retried"
            self._give_up(row, now=now, reason=str(exc), private=private, code=code)
            return "failed"
        if result.quota.remaining == 0 and result.quota.reset_at is not None:
            # the header counts whole seconds: the window may close up to a second later
            self._hold(row.platform, row.kind, until=result.quota.reset_at + timedelta(seconds=1),
                       error=msg.REPLY_LIMIT_HELD.format(platform=row.platform,
                                                         until=result.quota.reset_at.isoformat()))
        self._done(row, now=now, result=result, dry_run=False, private=private)
        return "sent"

    def _done(self, row: Outbox, *, now: datetime, result: ReplyResult | None, dry_run: bool, private: bool) -> None:
        payload = row.payload

        def record(s: Session) -> None:
            case = s.get(Case, row.case_id) if row.case_id else None
            if case is None:
                return
            if not dry_run:
                case.acknowledged_at = case.acknowledged_at or now
                if private and result is not None and result.recipient_id and result.recipient_id != case.author_id:
                    case.private_author_id = result.recipient_id  # their Messenger id: their answer continues this case
                # The bot's own acknowledgement is not a response: the countdown runs on until a person
                # answers, and the case moves to DM only when the customer writes in private.
                if payload.get("actor", "") != "auto":
                    case.first_public_response_at = case.first_public_response_at or now
                    case.first_response_at = case.first_response_at or now
                    if case.state == CaseState.OPEN:
                        case.state = CaseState.ACKNOWLEDGED
                s.add(case)
                s.add(Event(case_id=case.id or 0, at=now, kind="private_sent" if private else "ack_posted",
                            actor=payload.get("actor", ""), detail={"external_id": result.external_id if result else ""}))
            if dry_run:
                would = notes.WouldSendPrivate if private else notes.WouldPost
                note: notes.Note = would(text=payload["text"], lang=payload.get("lang", ""))
            elif private:
                note = notes.PrivatePosted(text=payload["text"], platform=row.platform)
            else:
                note = notes.AckPosted(text=payload["text"], lang=payload.get("lang", ""),
                                       dm_link=result.dm_link if result else "")
            outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"posted:{row.id}", case_id=case.id, target=case.channel,
                       now=now, payload=note.payload())
            outbox.request_update(s, case_id=case.id or 0, channel=case.channel, now=now)

        outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.SENT,
                      result={"external_id": result.external_id, "url": result.url, "dm_link": result.dm_link,
                              "recipient_id": result.recipient_id}
                      if result else {"dry_run": True}, also=record)

    def _give_up(self, row: Outbox, *, now: datetime, reason: str, private: bool,
                 code: RefusalReason | None = None) -> None:
        log.warning("outbox %s #%d refused: %s", row.kind, row.id, reason)

        def record(s: Session) -> None:
            if row.case_id is None:
                return
            case = s.get(Case, row.case_id)
            window = code == RefusalReason.MESSAGING_WINDOW
            refused = notes.PrivateRefused if private else notes.AckRefused
            note = notes.MessengerWindow() if (private and window and row.payload["target"]["kind"] == "message") \
                else refused(reason=reason)
            outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"refused:{row.id}", case_id=row.case_id,
                       target=case.channel if case else "", now=now, payload=note.payload())

        outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.FAILED, error=reason,
                      also=record)

    def _expires_at(self, row: Outbox) -> datetime | None:
        """When an automatic acknowledgement stops being worth posting: its case's response target
        (a public "sorry" a day late is worse than none), else an hour after it was queued."""
        with Session(self.engine) as s:
            case = s.get(Case, row.case_id) if row.case_id else None
            due = case.sla_due_at if case is not None else None
        if due is None:
            return row.created_at + AUTO_ACK_EXPIRY if row.created_at else None
        return due

    def _expire(self, row: Outbox, *, now: datetime, expired_at: datetime, held: datetime | None) -> None:
        log.warning("outbox %s #%d: automatic acknowledgement expired unposted", row.kind, row.id)

        def record(s: Session) -> None:
            case = s.get(Case, row.case_id) if row.case_id else None
            if case is None:
                return
            case.ack_mode = "approve"  # the team decides: the alert offers the button again,
            s.add(case)  # and the conversation's acknowledgement key is free for it
            table = Outbox.__table__
            s.execute(sa.update(table).where(table.c.id == row.id).values(
                dedup_key=f"expired:{row.id}:{row.dedup_key}"))
            s.add(Event(case_id=case.id or 0, at=now, kind="ack_expired", actor="auto",
                        detail={"held_until": held.isoformat() if held else ""}))
            outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"expired:{row.id}", case_id=case.id,
                       target=case.channel, now=now,
                       payload=notes.AckExpired(platform=row.platform, text=row.payload["text"],
                                                due=expired_at.isoformat(),
                                                held=held.isoformat() if held else "").payload())
            outbox.request_update(s, case_id=case.id or 0, channel=case.channel, now=now)

        outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.FAILED,
                      error=msg.REPLY_EXPIRED, result={"not_posted": True, "expired": True}, also=record)

    def _unknown(self, row: Outbox, *, now: datetime, target: ReplyTarget) -> None:
        def record(s: Session) -> None:
            if row.case_id is None:
                return
            case = s.get(Case, row.case_id)
            mention = s.get(Mention, row.mention_id) if row.mention_id else None
            outbox.add(s, kind=OutboxKind.THREAD, dedup_key=f"unknown:{row.id}", case_id=row.case_id,
                       target=case.channel if case else "", now=now,
                       payload=notes.AckUnknown(platform=row.platform, link=mention.url if mention else "").payload())

        outbox.finish(self.engine, row, worker=self.worker, now=now, state=OutboxState.UNKNOWN,
                      error="outcome unknown", also=record)

