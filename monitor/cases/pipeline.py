"""ingest(batch): dedup -> triage -> rules -> case + outbox -> cursor; everything it writes, in one transaction.

A read finds the mentions already stored; triage and rules run outside any transaction; then
the page's new mentions are stored with their cases, their outbox rows and the source's new
cursor in one write transaction, or nothing is: a crash loses nothing and a restart fetches
nothing twice.
"""

from __future__ import annotations

import itertools
import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, make_dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from connectors.platforms import Platform, is_private
from monitor.cases import acknowledge, silences, sla
from monitor.delivery import notes, outbox
from monitor.model import (
    PUBLIC_KINDS,
    Case,
    CaseState,
    Mention,
    NewMention,
    Outbox,
    OutboxKind,
    OutboxState,
    Score,
)
from monitor.rules import Decision, MentionFacts, Ruleset, evaluate
from monitor.rules.schema import Grouping
from monitor.rules.silences import VIP_ALIAS
from monitor.store import (
    SerializedJSON,
    execute_many,
    forget_statements,
    insert_for,
    json_dumps,
    json_dumps_unicode,
    padded_length,
    reserve_ids,
    select_rows,
    set_cursor,
    stores_json_dumps,
    transaction,
)
from monitor.triage import triage_many

log = logging.getLogger(__name__)

TriageFn = Callable[..., list[Score]]


def _row_type(model: type[SQLModel], **namespace: Any) -> tuple[type, dict[str, Any]]:
    """A plain class of `model`'s columns (slots, compared by identity like ORM objects) and the model's
    constant defaults, for rows an ingest builds, reads and changes without the ORM: SQLModel instances cost a
    page more than the rest of its case work (building each, an instrumented get and set per field; for cases,
    loading them into the identity map, `session.add` of each new one and an autoflush before every query)."""
    columns = [column.key for column in model.__table__.columns]  # type: ignore[attr-defined]
    cls = make_dataclass(f"{model.__name__}Row", columns, slots=True, eq=False, namespace=namespace)
    cls.__module__ = __name__
    defaults = {key: info.get_default() for key, info in model.model_fields.items()
                if not info.is_required() and info.default_factory is None}
    return cls, defaults


# A stored mention as the ingest built it (its Score from `score`, as Mention's)
MentionRow, _MENTION_DEFAULTS = _row_type(Mention, score=vars(Mention)["score"])
# A case as an ingest reads, opens and changes it; written back with Core (`_CaseBuilder._write_cases`)
CaseRow, _CASE_DEFAULTS = _row_type(Case)
_CASE_COLUMNS = [column.key for column in Case.__table__.columns]  # type: ignore[attr-defined]
_case_values = operator.attrgetter(*_CASE_COLUMNS)  # a CaseRow's values in column order, as a loaded row's


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """What a platform lets the bot post unprompted (connectors/platforms.py), and where DMs go."""

    platform: Platform
    dm_link: str = ""

    @property
    def auto_reply_kinds(self) -> frozenset[str]:
        return self.platform.auto_reply_kinds

    @property
    def requires_brand_mention(self) -> bool:  # X: only posts that @mention the brand
        return self.platform.requires_brand_mention

    @property
    def private_kinds(self) -> frozenset[str]:  # kinds that also get a private reply
        return self.platform.private_reply_kinds

    def length_refusal(self, *, kind: str, text: str) -> str:
        """Why `text` is too long for a reply to a `kind` post, as the platform counts it ("" if it fits)."""
        over = self.platform.too_long(kind=kind, text=text)
        if over is None:
            return ""
        return f"the text is {over[0]} characters, over {self.platform.name}'s limit of {over[1]}"


@dataclass(slots=True)
class IngestResult:
    source: str
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    cases_opened: int = 0
    attached: int = 0
    reopened: int = 0
    alerts: int = 0
    grouped: int = 0
    acks_queued: int = 0
    muted: int = 0  # alerts a silence muted (the mentions are stored)
    stored_ids: list[int] = field(default_factory=list)


def ingest(
    engine: Engine,
    *,
    source: str,
    batch: Sequence[NewMention],
    cursor: str | None,
    ruleset: Ruleset,
    now: datetime,
    policies: Mapping[str, ReplyPolicy] | None = None,
    dry_run: bool = False,
    triage_fn: TriageFn = triage_many,
    history: bool = False,
) -> IngestResult:
    """Store one fetched page and everything it causes; advance `source`'s cursor with it.

    `history` (backfill): the cases it opens are past, counted in reports, never warned about,
    breached or escalated."""
    result = IngestResult(source=source, fetched=len(batch))
    with transaction(engine) as session:
        fresh = _new_only(session, batch)
        in_force = silences.active_silences(session, ruleset=ruleset, now=now) if fresh else ()
    result.duplicates = len(batch) - len(fresh)
    # Triage and rules run outside the write transaction: on SQLite it holds the database's only
    # write lock, and the outbox's deliveries would wait behind it (bench/latency.py).  Whatever
    # another replica stores meanwhile is skipped by the insert below and counted as a duplicate.
    scores = triage_fn(
        [m.text for m in fresh],
        lang_hints=[m.lang_hint for m in fresh],
        languages=list(ruleset.brand.languages),
        explain=False,  # Score.signals are for `mention-monitor explain`; nothing stored or sent reads them
    ) if fresh else []
    facts = [_facts(m, s, source=source) for m, s in zip(fresh, scores, strict=True)]
    decisions, muted = silences.mute_decisions(
        in_force, facts=facts, decisions=[evaluate(ruleset, f) for f in facts],
        authors=[(m.author.handle, m.author.name, m.author.id) for m in fresh])
    muted_keys = {(fresh[i].platform, fresh[i].external_id): s for i, s in muted.items()}
    with transaction(engine) as session:
        if fresh:
            rows = _insert_mentions(session, fresh, scores, decisions, source=source, now=now)
            result.stored = len(rows)
            result.duplicates += len(fresh) - len(rows)
            result.stored_ids = [r.id for r in rows if r.id is not None]
            muted_rows = [(r.id, r.rule, muted_keys[(r.platform, r.external_id)]) for r in rows
                          if r.id is not None and (r.platform, r.external_id) in muted_keys]
            silences.record_muted(session, rows=muted_rows, now=now)
            result.muted = len(muted_rows)
            _CaseBuilder(session, ruleset=ruleset, now=now, policies=policies or {}, dry_run=dry_run,
                         result=result, history=history, muted=set(muted_keys)).run(rows, decisions_by_key={
                             (m.platform, m.external_id): d for m, d in zip(fresh, decisions, strict=True)})
        if cursor is not None:
            set_cursor(session, source, cursor, now=now)
    return result


def _new_only(session: Session, batch: Sequence[NewMention]) -> list[NewMention]:
    """Drop repeats within the batch and mentions already stored (one query for up to 500 ids, whatever
    their platforms: a pair it returns whose platform is another is no repeat, and stays)."""
    unique: dict[tuple[str, str], NewMention] = {}
    for m in batch:
        unique.setdefault((m.platform, m.external_id), m)
    platforms = sorted({platform for platform, _ in unique})
    ids = sorted({external_id for _, external_id in unique})
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        for stored in select_rows(session, _STORED, {"platforms": platforms, "ids": chunk}):
            unique.pop((stored[0], stored[1]), None)
    return sorted(unique.values(), key=lambda m: (m.created_at, m.external_id))


def _facts(m: NewMention, score: Score, *, source: str) -> MentionFacts:
    return MentionFacts(
        platform=m.platform,
        kind=m.kind,
        text=m.text,
        lang=score.lang,
        sentiment=score.sentiment,
        complaint=score.complaint,
        categories=score.categories,
        followers=m.author.followers,
        verified=m.author.verified,
        mentions_brand=m.mentions_brand,
        from_brand=m.from_brand,
        source=source,
    )


def _insert_mentions(
    session: Session,
    fresh: Sequence[NewMention],
    scores: Sequence[Score],
    decisions: Sequence[Decision],
    *,
    source: str,
    now: datetime,
) -> list[MentionRow]:
    """One executemany INSERT ... ON CONFLICT DO NOTHING with reserved ids; a concurrent insert is a duplicate."""
    ids = reserve_ids(session, Mention.__table__, len(fresh))  # type: ignore[arg-type]
    as_text = stores_json_dumps(session)  # the raw payload's text, made to check it, is what is stored
    values: list[dict[str, Any]] = []
    for m, s, d, new_id in zip(fresh, scores, decisions, ids, strict=True):
        values.append(
            dict(
                id=new_id, platform=m.platform, kind=m.kind, source=source, external_id=m.external_id,
                conversation_id=m.conversation_id or m.external_id, parent_id=m.parent_id,
                author_id=_safe(m.author.id), author_handle=_safe(m.author.handle), author_name=_safe(m.author.name),
                author_followers=m.author.followers, author_verified=m.author.verified,
                text=_safe(m.text), url=_safe(m.url), mentions_brand=m.mentions_brand, from_brand=m.from_brand,
                created_at=m.created_at, fetched_at=now, raw=_safe_raw(m.raw, as_text=as_text), lang=s.lang,
                sentiment=s.sentiment, complaint=s.complaint, categories=list(s.categories), rule=d.rule_name or (
                    d.matched[0].name if d.matched else ""),
            )
        )
    stored = execute_many(session, _insert_mentions_statement(session), values)
    if stored != len(values):  # a concurrent insert won (or the driver cannot count): which of our ids are there
        kept: set[int] = set()
        for start in range(0, len(ids), 400):
            kept.update(session.execute(_MENTIONS_BY_ID, {"ids": ids[start:start + 400]}).scalars())
        values = [row for row in values if row["id"] in kept]
    # not validated: the values are ours and already checked; validation cost 14x more
    rows = [MentionRow(**(_MENTION_DEFAULTS | row)) for row in values]
    if as_text:  # a row's payload is the one fetched (SerializedJSON only when nothing was replaced)
        payloads = {new_id: m.raw for m, new_id in zip(fresh, ids, strict=True)}
        for row in rows:
            if type(row.raw) is SerializedJSON:
                row.raw = payloads[row.id]
    return rows


_INSERT_MENTIONS: dict[str, Any] = {}
_MENTIONS_BY_ID = sa.select(Mention.__table__.c.id).where(  # type: ignore[attr-defined]
    Mention.__table__.c.id.in_(sa.bindparam("ids", expanding=True)))  # type: ignore[attr-defined]


def _insert_mentions_statement(session: Session) -> Any:
    """The mention INSERT ... ON CONFLICT DO NOTHING of the session's dialect, built once (execute_many
    prepares it once). Without RETURNING: the ids are reserved, and the row count says whether every row
    went in."""
    dialect = session.get_bind().dialect.name
    statement = _INSERT_MENTIONS.get(dialect)
    if statement is None:
        statement = _INSERT_MENTIONS[dialect] = insert_for(session)(Mention.__table__).on_conflict_do_nothing(
            index_elements=["platform", "external_id"])
    return statement


def _opened_since(opened_at: datetime | None, since: datetime) -> bool:
    return opened_at is not None and opened_at >= since


def _new_case(**values: Any) -> CaseRow:
    """A case to open: `values` over the model's defaults."""
    return CaseRow(**(_CASE_DEFAULTS | values))


class _CaseBuilder:
    """Opens, attaches and reopens cases for one batch, writing their outbox rows.

    Cases are `CaseRow`s: what the loop looks up (the authors' cases, hand-offs, storm control's state,
    reply parents, our posted replies) is read before it with Core, one object per case id however many
    queries return it; inside it only the case id reservation queries.  After it the cases it opened are
    written with one INSERT and the ones it changed with an UPDATE of the changed columns (`_write_cases`)."""

    def __init__(
        self, session: Session, *, ruleset: Ruleset, now: datetime, policies: Mapping[str, ReplyPolicy],
        dry_run: bool, result: IngestResult, history: bool = False, muted: set[tuple[str, str]] | None = None,
    ) -> None:
        self.history = history
        self.s = session
        self.muted = muted or set()  # (platform, external id) whose alert a silence muted
        self.rules = ruleset
        self.now = now
        self.policies = policies
        self.dry_run = dry_run
        self.result = result
        self.cases: dict[tuple[str, str, str], CaseRow] = {}  # (platform, conversation, author) -> latest case
        self.by_conversation: dict[tuple[str, str], list[CaseRow]] = {}
        self.group_counts: dict[str, tuple[int, CaseRow | None]] = {}
        self.channel_counts: dict[str, int] = {}  # channel -> its alerts of their own in grouping.channel_window
        self.channel_individual: dict[str, int] = {}  # channel -> the same, as the page's read found it
        self.group_individual: dict[str, int] = {}  # group key -> its individual alerts in the window (page's read)
        self.group_leaders: dict[str, list[CaseRow]] = {}  # group key -> its groups in the window (page's read)
        self.reopened: dict[int, tuple[CaseRow, datetime | None]] = {}  # case id -> (case, opened_at before)
        self.opened: list[CaseRow] = []  # the page's new cases, in the order opened
        self.batch = outbox.Batch()  # the page's outbox rows and events (run() begins it on the session)
        self.case_ids: list[int] = []  # reserved, not yet used (reversed: pop() gives the next)
        self.parents: dict[tuple[str, str], tuple[int, int | None]] = {}  # (platform, external id) -> (id, case)
        self.posted: dict[int, set[str]] = {}  # case id -> platform ids of the replies our outbox posted
        # (platform, conversation) where too many cases wait for a reply to the post to answer one of them
        self.crowded: set[tuple[str, str]] = set()
        # (platform, author id) -> the acknowledged cases of a private author (author_id or private_author_id)
        self.handed_off: dict[tuple[str, str], list[CaseRow]] = {}
        self.loaded: dict[int, tuple[CaseRow, tuple[Any, ...]]] = {}  # case id -> (its row, its values as read)
        self.rows_left = 0

    def run(self, rows: Sequence[MentionRow], *, decisions_by_key: Mapping[tuple[str, str], Decision]) -> None:
        self.batch = outbox.begin_batch(self.s)
        self._load_parents(rows)
        self._load_cases(rows)
        self._load_page_context(rows)
        self._load_handed_off(rows)
        self._load_groups(rows, decisions_by_key)
        acknowledge.prefetch_recent_acks(self.s, authors=[(r.platform, r.author_id) for r in rows],
                                         since=self.now - self.rules.acknowledgement.cooldown)
        mention_updates: list[dict[str, Any]] = []
        for left, row in enumerate(rows):
            self.rows_left = len(rows) - left  # at most one new case per row: a bound for reserve_ids
            decision = decisions_by_key[(row.platform, row.external_id)]
            case_id = self._one(row, decision)
            if case_id is not None:
                mention_updates.append({"b_id": row.id, "b_case": case_id})
        self._write_cases()
        outbox.flush_batch(self.s)
        self._link_mentions(mention_updates)

    def _link_mentions(self, updates: Sequence[dict[str, Any]]) -> None:
        """Each stored mention's case id, in one executemany UPDATE."""
        execute_many(self.s, _LINK_MENTIONS, updates)

    def _write_cases(self) -> None:
        """The page's new cases in one Core INSERT (executemany; their ids were reserved, nothing reads them
        back in this ingest), then each case it changed with an UPDATE of the columns whose values differ from
        what was read, as the unit of work would write them: in id order, one executemany for each run of
        cases that changed the same columns."""
        if self.opened:
            rows = [_case_values(case) for case in self.opened]
            # A column no new case of the page sets (most of the timestamps a case gets later) is left out of
            # the INSERT: it stores NULL, as its None would (the table has no server defaults), without a bind
            # processor per row.
            named = [(i, key) for i, key in enumerate(_CASE_COLUMNS) if any(row[i] is not None for row in rows)]
            execute_many(self.s, _INSERT_CASES, [{key: row[i] for i, key in named} for row in rows])
        changes: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        for case_id in sorted(self.loaded):
            case, read = self.loaded[case_id]
            values = _case_values(case)
            if values == read:
                continue
            changed = {f"b_{key}": new for key, old, new in zip(_CASE_COLUMNS, read, values, strict=True)
                       if old != new}
            changes.append((tuple(changed), {"b_id": case_id, **changed}))
        for columns, run in itertools.groupby(changes, key=lambda change: change[0]):
            execute_many(self.s, _update_cases(columns), [params for _, params in run])

    def _read_cases(self, statement: Any, params: Mapping[str, Any]) -> list[CaseRow]:
        """The cases a Core SELECT of the whole row finds, one CaseRow per id: a case another of the page's
        queries returned already is that object (as the ORM's identity map kept it, the first read wins)."""
        found: list[CaseRow] = []
        for values in select_rows(self.s, statement, params):
            known = self.loaded.get(values[0])
            if known is None:
                known = self.loaded[values[0]] = (CaseRow(*values), values)
            found.append(known[0])
        return found

    def _next_case_id(self) -> int:
        if not self.case_ids:
            self.case_ids = reserve_ids(self.s, Case.__table__, max(self.rows_left, 1))[::-1]
        return self.case_ids.pop()

    def _load_parents(self, rows: Sequence[MentionRow]) -> None:
        """The stored mentions the page's brand replies answer: (id, case id) by platform id, for `_answered_by`
        (the page's own mentions are stored already; they get their case ids after the loop)."""
        parents: dict[str, set[str]] = {}
        for row in rows:
            if row.from_brand and row.parent_id:
                parents.setdefault(row.platform, set()).add(row.parent_id)
        for platform, external_ids in parents.items():
            ordered = sorted(external_ids)
            for start in range(0, len(ordered), 400):
                for mention_id, case_id, external_id in select_rows(
                        self.s, _PARENTS, {"platform": platform, "ids": ordered[start:start + 400]}):
                    self.parents[(platform, external_id)] = (mention_id, case_id)

    def _load_cases(self, rows: Sequence[MentionRow]) -> None:
        """The cases this page can touch: each author's own in their conversation, and in a conversation the
        brand answered, those still waiting for a first response (all of them when there are few, else enough
        to know there are too many to pick one, plus the waiting cases of the mentions the replies answer).
        (All cases of the page's conversations were read before: a Facebook post with thousands of commenters
        made every page read thousands; then all waiting ones, which on a busy post are hundreds.)"""
        authors: set[tuple[str, str, str]] = set()  # (platform, conversation, author)
        brand_rows: dict[tuple[str, str], int] = {}  # (platform, conversation) -> brand rows in the page
        for row in rows:
            if row.from_brand:
                key = (row.platform, row.conversation_id)
                brand_rows[key] = brand_rows.get(key, 0) + 1
            else:
                authors.add((row.platform, row.conversation_id, row.author_id))
        found: dict[int, CaseRow] = {}
        ordered = sorted(authors)  # every platform in one query (one per platform cost a page a query each)
        for start in range(0, len(ordered), 400):
            chunk = ordered[start:start + 400]
            found.update((case.id, case) for case in self._read_cases(_AUTHORS_CASES, {
                "authors": sorted({author for _, _, author in chunk}), "triples": chunk}))
        # A brand reply to the post itself answers the one waiting case, if only one waits (`_answered_by`).
        # Each brand reply answers at most two, so with 2 x (the page's replies) + 2 waiting at the start, at
        # least two still wait at every reply of the page: then `limit` rows of the conversation are enough
        # (the most replies one conversation of the platform got in the page).
        limits: dict[str, int] = {}
        for (platform, _), count in brand_rows.items():
            limits[platform] = max(limits.get(platform, 0), 2 * count + 2)
        ordered_conversations = sorted(brand_rows)
        for start in range(0, len(ordered_conversations), 200):
            # one LIMIT per conversation: the index on conversation_id walks a conversation in id order and
            # stops at `limit` (a window over the conversations read every waiting case of a busy post)
            chunk = ordered_conversations[start:start + 200]
            # room for the next power of two of conversations: one statement per count was a cache that grew
            # with traffic (~6 KB a conversation, ~12 MB after 60 counts); per power of two, nine at most
            slots = padded_length(len(chunk))
            params: dict[str, Any] = {}
            for i, (platform, conversation) in enumerate(chunk):
                params.update({f"platform_{i}": platform, f"conversation_{i}": conversation,
                               f"limit_{i}": limits[platform]})
            for i in range(len(chunk), slots):  # the slots past the chunk ask for nothing
                params.update({f"platform_{i}": None, f"conversation_{i}": None, f"limit_{i}": 0})
            per_conversation: dict[tuple[str, str], int] = {}
            for case in self._read_cases(_first_waiting(slots), params):
                found[case.id] = case
                key = (case.platform, case.conversation_id)
                per_conversation[key] = per_conversation.get(key, 0) + 1
            self.crowded.update(key for key, n in per_conversation.items() if n >= limits[key[0]])
        parent_cases = sorted({parent[1] for parent in self.parents.values() if parent[1] is not None})
        for start in range(0, len(parent_cases), 400):
            found.update((case.id, case) for case in self._read_cases(
                _WAITING_BY_ID, {"ids": parent_cases[start:start + 400]}))
        for case_id in sorted(found):  # id order, as _brand_answered walks a conversation's cases
            self._remember(found[case_id])

    def _load_page_context(self, rows: Sequence[MentionRow]) -> None:
        """Our posted replies in the conversations of the page's brand replies, in a few queries for the whole page
        instead of one or two per row (each also flushing the page's pending cases).  Nothing the loop writes
        changes these answers: a reply of ours is `sent` only once delivered."""
        brand_conversations = {(row.platform, row.conversation_id) for row in rows if row.from_brand}
        case_ids = sorted({c.id for key in brand_conversations for c in self.by_conversation.get(key, [])
                           if c.id is not None})
        for start in range(0, len(case_ids), 400):
            for case_id, result in select_rows(self.s, _POSTED, {"ids": case_ids[start:start + 400]}):
                if result and result.get("external_id") and case_id is not None:
                    self.posted.setdefault(case_id, set()).add(str(result.get("external_id")))

    def _load_handed_off(self, rows: Sequence[MentionRow]) -> None:
        """The acknowledged cases of the page's private authors, in one query per platform and 400 authors,
        for `_handed_off_case` (one query per private message before, each flushing the page's pending cases).
        Read whatever their state: a case reopened earlier in the page counts again, so the state and the
        resolution are checked at use.  `acknowledged_at` and `private_author_id` are set only by deliveries,
        and a case the page opens has neither, so nothing else the loop writes changes which cases these are."""
        authors: dict[str, set[str]] = {}
        for row in rows:
            if is_private(row.kind) and not row.from_brand and row.created_at is not None:
                authors.setdefault(row.platform, set()).add(row.author_id)
        found: dict[int, CaseRow] = {}
        for platform, ids in authors.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), 400):
                chunk = ordered[start:start + 400]
                found.update((case.id, case) for case in self._read_cases(
                    _ACKNOWLEDGED, {"platform": platform, "authors": chunk}))
        for case_id in sorted(found):
            case = found[case_id]
            for author in {case.author_id, case.private_author_id}:
                if author is not None:
                    self.handed_off.setdefault((case.platform, author), []).append(case)

    def _remember(self, case: CaseRow) -> None:
        self.cases[(case.platform, case.conversation_id, case.author_id)] = case
        self.by_conversation.setdefault((case.platform, case.conversation_id), []).append(case)

    def _one(self, row: MentionRow, decision: Decision) -> int | None:
        if row.from_brand:
            self._brand_answered(row)
            return None
        case = self.cases.get((row.platform, row.conversation_id, row.author_id))
        private = is_private(row.kind)
        if private and (case is None or case.state == CaseState.RESOLVED):
            # One case per customer across public and private: a DM after the hand-off continues it.
            handed_off = self._handed_off_case(row)
            if handed_off is not None:
                case = handed_off
                self._customer_wrote_privately(case, row)
        if decision.dropped:
            self.result.dropped += 1
            return None
        if (row.platform, row.external_id) in self.muted:
            # muted: never opens or reopens a case; a conversation already in front of the team keeps it, quietly
            if case is not None and case.state != CaseState.RESOLVED:
                self._attach(case, row, decision, quiet=True)
                return case.id
            return None
        if case is not None and case.state != CaseState.RESOLVED:
            self._attach(case, row, decision)
            return case.id
        if case is not None and (decision.alert is not None or row.score.negative):
            self._reopen(case, row, decision)
            return case.id
        if case is not None:
            self._attach(case, row, decision, quiet=True)
            return case.id
        if decision.alert is None:
            return None
        return self._open(row, decision).id

    # ------------------------------------------------------------------ cases

    def _open(self, row: MentionRow, decision: Decision) -> CaseRow:
        alert = decision.alert
        assert alert is not None
        start = min(row.created_at or self.now, self.now)
        channel = self.rules.channel(alert.channel)
        case = _new_case(
            platform=row.platform, conversation_id=row.conversation_id, author_id=row.author_id,
            author_handle=row.author_handle or row.author_name, first_mention_id=row.id, state=CaseState.OPEN,
            rule=decision.rule_name, severity=alert.severity, channel=channel,
            group_key=group_key(decision, row), opened_at=start,
            sla_seconds=int(alert.sla.total_seconds()), sla_business_hours=alert.business_hours,
            sla_due_at=sla.due_at(start=start, seconds=int(alert.sla.total_seconds()),
                                  business_hours=self.rules.business_hours if alert.business_hours else None),
            last_mention_at=row.created_at, mention_count=1,
            dry_run=self.dry_run or alert.dry_run,
            backfilled_at=self.now if self.history else None,
            id=self._next_case_id(),  # the case id names its outbox rows; the cases are flushed together
        )
        self._remember(case)
        self.opened.append(case)
        self.result.cases_opened += 1
        outbox.add_event(self.s, case_id=case.id, at=self.now, kind="opened",
                         detail={"rule": case.rule, "mention_id": row.id, "due": case.sla_due_at.isoformat()
                                 if case.sla_due_at else None})
        self._queue_alert(case, row, decision)
        self._queue_acknowledgement(case, row, decision)
        return case

    def _queue_alert(self, case: CaseRow, row: MentionRow, decision: Decision) -> None:
        """Storm control: beyond the group's budget in the window, cases share one grouped message.
        What must be seen alone (grouping.never) always gets its own alert."""
        grouping = self.rules.grouping
        assert case.id is not None
        individual, leader = self._group_state(case.group_key, grouping.window, opening=case.id)
        in_channel = self._channel_alerts(case.channel, grouping.channel_window, opening=case.id)
        if not grouping.beyond_budget(individual, in_channel=in_channel) or must_stand_alone(grouping, decision, row):
            outbox.add(self.s, kind=OutboxKind.ALERT, dedup_key=f"alert:{case.id}", case_id=case.id,
                       mention_id=row.id, target=case.channel, payload={"case_id": case.id}, now=self.now)
            self.group_counts[case.group_key] = (individual + 1, leader)
            self.channel_counts[case.channel] = in_channel + 1
            self.result.alerts += 1
            return
        self.result.grouped += 1
        if leader is None:
            # The group's message.  Alone it reads as the case's own alert (no "group of one"); the
            # second member turns it into the grouped message, and both get their line in its thread.
            case.grouped_into = case.id
            outbox.add(self.s, kind=OutboxKind.ALERT, dedup_key=f"alert:{case.id}", case_id=case.id,
                       mention_id=row.id, target=case.channel, payload={"case_id": case.id, "group": True},
                       now=self.now)
            self.group_counts[case.group_key] = (individual, case)
            self.result.alerts += 1
            return
        case.grouped_into = leader.id
        outbox.request_update(self.s, case_id=leader.id or 0, channel=leader.channel, now=self.now)
        queued = self.batch.rows
        for member_id, mention_id in ((leader.id, leader.first_mention_id), (case.id, row.id)):
            if f"member:{member_id}" in queued:
                continue  # the leader's line, queued with an earlier member of this page (outbox.add would skip it)
            outbox.add(self.s, kind=OutboxKind.THREAD, dedup_key=f"member:{member_id}", case_id=leader.id,
                       mention_id=mention_id, target=case.channel,
                       payload=notes.GroupMember(member_case_id=member_id or 0, mention_id=mention_id or 0).payload(),
                       now=self.now)

    def _channel_alerts(self, channel: str, window: timedelta, *, opening: int) -> int:
        """Alerts of their own (not grouped) posted to `channel` in the window, across all rules,
        BEFORE the case being opened: grouping.channel_max_alerts.  From the page's read (`_load_groups`),
        corrected for the cases the page reopened, as `_group_state` (the first case a page opens in a
        channel asks first: no other new case of the page is in the channel yet)."""
        if channel not in self.channel_counts:
            self.channel_counts[channel] = self.channel_individual.get(channel, 0) + self._reopened_shift(
                lambda case: case.channel == channel, since=self.now - window, opening=opening)
        return self.channel_counts[channel]

    def _reopened_shift(self, belongs: Callable[[CaseRow], bool], *, since: datetime, opening: int) -> int:
        """How the cases the page reopened move a count of alerts of their own opened since `since` (a
        reopened case opens again now, so it may enter the window), among the cases `belongs` picks, not
        counting the case being opened."""
        shift = 0
        for case, opened_before in self.reopened.values():
            if belongs(case) and case.grouped_into is None and case.id != opening:
                shift += int(_opened_since(case.opened_at, since)) - int(_opened_since(opened_before, since))
        return shift

    def _load_groups(self, rows: Sequence[MentionRow], decisions_by_key: Mapping[tuple[str, str], Decision]) -> None:
        """Storm control's state of every group key and channel the page may open a case in, in two queries
        for the page: the keys' and the channels' counts of alerts of their own together, then the keys' open
        groups (before: two per key and one per channel, each first flushing the page's pending cases)."""
        key_set: set[str] = set()
        channel_set: set[str] = set()
        for row in rows:
            decision = decisions_by_key[(row.platform, row.external_id)]
            if not row.from_brand and decision.alert is not None:
                key_set.add(group_key(decision, row))
                channel_set.add(self.rules.channel(decision.alert.channel))
        keys, channels = sorted(key_set), sorted(channel_set)
        since = self.now - self.rules.grouping.window
        for start in range(0, len(keys), 400):
            chunk = keys[start:start + 400]
            for by_channel, name, count in select_rows(self.s, _ALERT_COUNTS, {
                    "keys": chunk, "since": since, "channels": channels if start == 0 else [],
                    "channel_since": self.now - self.rules.grouping.channel_window}):
                (self.channel_individual if by_channel else self.group_individual)[name] = int(count)
            for case in self._read_cases(_GROUP_LEADERS, {"keys": chunk, "since": since}):
                self.group_leaders.setdefault(case.group_key, []).append(case)

    def _group_state(self, group_key: str, window: timedelta, *, opening: int) -> tuple[int, CaseRow | None]:
        """(individual alerts of the key in the window, its open group) BEFORE the case being opened, as the
        database would answer with the page's changes so far: from the page's read (`_load_groups`), corrected
        for the cases the page reopened (a reopened case opens again now, so it may enter the window).  No other
        change the loop makes moves a case in or out: a new case's key is seen here first (its group's state
        is then kept in `group_counts`), and only new cases get `grouped_into`."""
        if group_key in self.group_counts:
            return self.group_counts[group_key]
        since = self.now - window
        individual = self.group_individual.get(group_key, 0) + self._reopened_shift(
            lambda case: case.group_key == group_key, since=since, opening=opening)
        candidates = {c.id: c for c in self.group_leaders.get(group_key, ())}
        candidates.update((c.id, c) for c, _ in self.reopened.values() if c.group_key == group_key)
        leader = max((c for c in candidates.values() if c.group_key == group_key and c.grouped_into == c.id
                      and _opened_since(c.opened_at, since)), key=lambda c: c.id or 0, default=None)
        state = (individual, leader)
        self.group_counts[group_key] = state
        return state

    def _attach(self, case: CaseRow, row: MentionRow, decision: Decision, *, quiet: bool = False) -> None:
        case.mention_count += 1
        case.last_mention_at = row.created_at
        attention = not quiet and (decision.alert is not None or row.score.negative)
        if case.state == CaseState.SNOOZED and attention:
            case.state = CaseState.OPEN
            case.snoozed_until = None
        self.result.attached += 1
        assert case.id is not None
        outbox.add_event(self.s, case_id=case.id, at=self.now, kind="followup", detail={"mention_id": row.id})
        # a private message stays in the thread: reply_broadcast would show its text in the channel
        private = is_private(row.kind) and row.conversation_id != case.conversation_id
        outbox.add(self.s, kind=OutboxKind.THREAD, dedup_key=f"followup:{row.id}", case_id=case.id,
                   mention_id=row.id, target=case.channel,
                   payload=notes.Followup(mention_id=row.id, broadcast=attention and not private,
                                          private=private).payload(), now=self.now)
        outbox.request_update(self.s, case_id=case.id, channel=case.channel, now=self.now)

    def _reopen(self, case: CaseRow, row: MentionRow, decision: Decision) -> None:
        seconds = case.sla_seconds or 3600
        business = case.sla_business_hours
        if decision.alert is not None:
            seconds = int(decision.alert.sla.total_seconds())
            business = decision.alert.business_hours
        start = min(row.created_at or self.now, self.now)
        assert case.id is not None
        self.reopened.setdefault(case.id, (case, case.opened_at))  # storm control's count (_group_state)
        case.state = CaseState.OPEN
        case.resolved_at = None
        case.sla_due_at = sla.due_at(start=start, seconds=seconds,
                                     business_hours=self.rules.business_hours if business else None)
        case.opened_at = start
        case.sla_seconds = seconds
        case.sla_business_hours = business
        case.warned_at = None
        case.breached_at = None
        case.escalation_level = 0
        case.first_response_at = None
        case.mention_count += 1
        case.last_mention_at = row.created_at
        self.result.reopened += 1
        assert case.id is not None
        outbox.add_event(self.s, case_id=case.id, at=self.now, kind="reopened", detail={"mention_id": row.id})
        private = is_private(row.kind) and row.conversation_id != case.conversation_id
        outbox.add(self.s, kind=OutboxKind.THREAD, dedup_key=f"followup:{row.id}", case_id=case.id,
                   mention_id=row.id, target=case.channel,
                   payload=notes.Reopened(mention_id=row.id, broadcast=not private, private=private).payload(),
                   now=self.now)
        outbox.request_update(self.s, case_id=case.id, channel=case.channel, now=self.now)

    def _brand_answered(self, row: MentionRow) -> None:
        """A reply by the brand account on the platform counts as the case's first response, unless
        it is one we posted ourselves (the bot's acknowledgement is no response by a person)."""
        cases = self.by_conversation.get((row.platform, row.conversation_id), [])
        if row.external_id in self._posted_by_us([c.id for c in cases if c.id is not None]):
            return
        for case in self._answered_by(row, cases):
            if case.state == CaseState.RESOLVED or case.first_response_at is not None:
                continue
            when = min(row.created_at or self.now, self.now)
            case.first_response_at = when
            if case.first_public_response_at is None:
                case.first_public_response_at = when
            assert case.id is not None
            outbox.add_event(self.s, case_id=case.id, at=self.now, kind="responded_on_platform",
                             detail={"mention_id": row.id})
            outbox.add(self.s, kind=OutboxKind.THREAD, dedup_key=f"brand-answer:{row.id}:{case.id}",
                       case_id=case.id, mention_id=row.id, target=case.channel,
                       payload=notes.RespondedOnPlatform(mention_id=row.id).payload(), now=self.now)
            outbox.request_update(self.s, case_id=case.id, channel=case.channel, now=self.now)

    def _answered_by(self, row: MentionRow, cases: Sequence[CaseRow]) -> list[CaseRow]:
        """The case whose mention the brand's reply answers (its parent), not every case of the post or
        thread; a reply to the post itself answers a case only when the post has just one waiting."""
        parent = self.parents.get((row.platform, row.parent_id)) if row.parent_id else None
        if parent is not None and (parent[1] is not None or any(c.first_mention_id == parent[0] for c in cases)):
            return [c for c in cases if c.id == parent[1] or c.first_mention_id == parent[0]]
        if row.parent_id and row.parent_id != row.conversation_id:
            return []  # it answers someone who has no case
        if (row.platform, row.conversation_id) in self.crowded:
            return []  # more than one waits, whatever the page answered so far (_load_cases)
        waiting = [c for c in cases if c.state != CaseState.RESOLVED and c.first_response_at is None]
        return waiting if len(waiting) == 1 else []

    def _posted_by_us(self, case_ids: Sequence[int]) -> set[str]:
        """Platform ids of the replies our outbox posted for these cases (read for the page up front)."""
        return {external_id for case_id in case_ids for external_id in self.posted.get(case_id, ())}

    def _handed_off_case(self, row: MentionRow) -> CaseRow | None:
        """The customer's public case that was handed off (acknowledged, or answered in private) before this
        private message, still open or resolved less than `acknowledgement.private_followup` ago.  On
        Facebook the person has another id in Messenger: the one the private reply returned."""
        if row.created_at is None:
            return None
        since = self.now - self.rules.acknowledgement.private_followup
        candidates = [
            case for case in self.handed_off.get((row.platform, row.author_id), ())
            if case.conversation_id != row.conversation_id
            and case.acknowledged_at is not None and case.acknowledged_at <= row.created_at
            and (case.state != CaseState.RESOLVED or (case.resolved_at is not None and case.resolved_at >= since))
        ]
        # the newest hand-off first, as ORDER BY acknowledged_at DESC, id DESC
        return max(candidates, key=lambda case: (case.acknowledged_at, case.id or 0), default=None)

    def _customer_wrote_privately(self, case: CaseRow, row: MentionRow) -> None:
        """A private message after the hand-off: the customer really moved to DM (the KPI counts only this)."""
        if case.moved_to_dm:
            return
        case.moved_to_dm = True
        case.customer_dm_at = row.created_at
        assert case.id is not None
        outbox.add_event(self.s, case_id=case.id, at=self.now, kind="customer_dm", detail={"mention_id": row.id})

    # ------------------------------------------------------------------ acknowledgement

    def _queue_acknowledgement(self, case: CaseRow, row: MentionRow, decision: Decision) -> None:
        ack = decision.acknowledge
        if ack is None or ack.mode == "off":
            return
        plan = acknowledge.plan(
            self.s, ruleset=self.rules, case=case, mention=row, mode=ack.mode, template=ack.template,
            policy=self.policies.get(row.platform), now=self.now,
            dry_run=case.dry_run or self.rules.ack_dry_run(ack), private_template=ack.private_template,
        )
        if plan.queued:
            self.result.acks_queued += 1


# The ingest's writes, built once (monitor.store.execute_many prepares each once per dialect)
_INSERT_CASES = sa.insert(Case.__table__)  # type: ignore[arg-type]
_UPDATE_CASES: dict[tuple[str, ...], Any] = {}


def _update_cases(columns: tuple[str, ...]) -> Any:
    """UPDATE case SET each of `columns` (`b_<column>`) WHERE id = :b_id, built once per set of columns."""
    statement = _UPDATE_CASES.get(columns)
    if statement is None:
        table = Case.__table__
        statement = _UPDATE_CASES[columns] = sa.update(table).where(  # type: ignore[arg-type]
            table.c.id == sa.bindparam("b_id")).values(  # type: ignore[attr-defined]
            {name.removeprefix("b_"): sa.bindparam(name) for name in columns})
    return statement


_LINK_MENTIONS = sa.update(Mention.__table__).where(  # type: ignore[arg-type]
    Mention.__table__.c.id == sa.bindparam("b_id")).values(case_id=sa.bindparam("b_case"))  # type: ignore[attr-defined]
# The ingest's page look-ups, built once: a page pays neither building them nor their cache keys.
_MENTION = Mention.__table__  # type: ignore[attr-defined]
# Core, not ORM: a page's dedup needs no ORM entities, and the session's execute would autoflush and build them
_STORED = sa.select(_MENTION.c.platform, _MENTION.c.external_id).where(
    _MENTION.c.platform.in_(sa.bindparam("platforms", expanding=True)),
    _MENTION.c.external_id.in_(sa.bindparam("ids", expanding=True)))
_PARENTS = select(Mention.id, Mention.case_id, Mention.external_id).where(
    Mention.platform == sa.bindparam("platform"), Mention.external_id.in_(sa.bindparam("ids", expanding=True)))
_C = Case.__table__.c  # type: ignore[attr-defined]  # Core columns: the statements are not ORM-enabled
_WAITING = (_C.state != CaseState.RESOLVED, _C.first_response_at.is_(None))
# Whole case rows, read with Core into CaseRows (`_CaseBuilder._read_cases`: the id must come first)
_CASE_ROWS = sa.select(Case.__table__)  # type: ignore[call-overload]
_WAITING_BY_ID = _CASE_ROWS.where(_C.id.in_(sa.bindparam("ids", expanding=True)), *_WAITING)
# `kind || ''` and `state || ''`: given a long list of case ids, SQLite preferred the reply-window index on
# kind and read every public reply ever queued, then the due index on state and read every row ever sent;
# the expressions leave it the index on case_id
_POSTED = select(Outbox.case_id, Outbox.result).where(
    Outbox.case_id.in_(sa.bindparam("ids", expanding=True)),
    Outbox.kind.concat("").in_(sorted(str(kind) for kind in PUBLIC_KINDS)),
    Outbox.state.concat("") == OutboxState.SENT.value)
_ACKNOWLEDGED = _CASE_ROWS.where(
    _C.platform == sa.bindparam("platform"), _C.acknowledged_at.is_not(None),
    sa.or_(_C.author_id.in_(sa.bindparam("authors", expanding=True)),
           _C.private_author_id.in_(sa.bindparam("authors", expanding=True))))
# (0, group key, its alerts of their own since :since) and (1, channel, the same since :channel_since)
_ALERT_COUNTS = sa.union_all(
    sa.select(sa.literal_column("0"), _C.group_key, sa.func.count()).where(
        _C.group_key.in_(sa.bindparam("keys", expanding=True)), _C.opened_at >= sa.bindparam("since"),
        _C.grouped_into.is_(None)).group_by(_C.group_key),
    sa.select(sa.literal_column("1"), _C.channel, sa.func.count()).where(
        _C.channel.in_(sa.bindparam("channels", expanding=True)), _C.opened_at >= sa.bindparam("channel_since"),
        _C.grouped_into.is_(None)).group_by(_C.channel))
_GROUP_LEADERS = _CASE_ROWS.where(
    _C.group_key.in_(sa.bindparam("keys", expanding=True)), _C.opened_at >= sa.bindparam("since"),
    _C.grouped_into == _C.id)
# Each author's cases in their conversation.  The author_id IN lets SQLite search its index: the
# row-value IN alone scanned every case.  Built once: a page pays neither building it nor its cache key.
_AUTHORS_CASES = _CASE_ROWS.where(
    _C.author_id.in_(sa.bindparam("authors", expanding=True)),
    sa.tuple_(_C.platform, _C.conversation_id, _C.author_id).in_(sa.bindparam("triples", expanding=True)))
_FIRST_WAITING: dict[int, Any] = {}


def _first_waiting(conversations: int) -> Any:
    """SELECT the first `:limit_<i>` cases waiting for a response in each of `conversations` conversations
    (`:platform_<i>`, `:conversation_<i>`): one LIMIT per conversation in a UNION ALL.  Built once per
    count (`padded_length`), so a page pays neither building it nor its cache key."""
    statement = _FIRST_WAITING.get(conversations)
    if statement is None:
        firsts = [sa.select(_C.id).where(
            _C.platform == sa.bindparam(f"platform_{i}"), _C.conversation_id == sa.bindparam(f"conversation_{i}"),
            *_WAITING).order_by(_C.id).limit(sa.bindparam(f"limit_{i}")).subquery() for i in range(conversations)]
        ids = sa.union_all(*(select(first.c.id) for first in firsts)) if conversations > 1 \
            else select(firsts[0].c.id)
        statement = _FIRST_WAITING[conversations] = _CASE_ROWS.where(_C.id.in_(ids.scalar_subquery()))
    return statement


def release_statements() -> None:
    """Let go of the `_first_waiting` statements a burst built (an idle daemon: monitor.runtime.memory);
    the next page builds the one it needs again (a few ms).  What `select_rows` compiled for them goes too."""
    built = list(_FIRST_WAITING.values())
    _FIRST_WAITING.clear()
    forget_statements(built)


def _safe(text: str) -> str:
    """Text every database can store: PostgreSQL refuses NUL in text, and no driver encodes a lone
    UTF-16 surrogate (JSON escapes can carry both from a platform)."""
    if text.isascii() and "\x00" not in text:  # most ids, handles and URLs: isascii reads one flag
        return text
    return _encodable(text.replace("\x00", ""))


def _safe_raw(value: Any, *, as_text: bool = False) -> Any:
    """The raw payload with lone surrogates replaced (PostgreSQL's json rejects them); NUL stays, escaped.
    `as_text`: a payload without any is returned as the `SerializedJSON` of the text made to check it."""
    if isinstance(value, dict):
        try:
            text = json_dumps(value)
        except (TypeError, ValueError):
            return _replace_surrogates(value)
        # almost every payload has no surrogate at all: its ASCII JSON has no escape of one; one with emoji has
        # them in pairs, which its text without escapes encodes (one check in C instead of a walk over every value)
        if "\\ud" not in text or _encodes(json_dumps_unicode(value)):
            return SerializedJSON(text) if as_text else value
    return _replace_surrogates(value)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _encodable(text: str) -> str:
    """`text` with each lone surrogate (which no driver encodes) replaced by "?"."""
    return text if _encodes(text) else text.encode("utf-8", "replace").decode("utf-8")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _encodable(value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


class GroupingFacts(Protocol):
    """What storm control reads of a mention: a stored Mention row, or the backtest's StoredMention."""

    @property
    def author_verified(self) -> bool: ...

    @property
    def categories(self) -> Sequence[str]: ...


def must_stand_alone(grouping: Grouping, decision: Decision, row: GroupingFacts) -> bool:
    """grouping.never: critical severity, an alert to the `vip` alias, a verified author (also the backtest's)."""
    alert = decision.alert
    never = set(grouping.never)
    return alert is not None and (
        ("critical" in never and alert.severity == "critical")
        or ("vip" in never and alert.channel == VIP_ALIAS)
        or ("verified" in never and row.author_verified))


def group_key(decision: Decision, row: GroupingFacts) -> str:
    """Storm control's key: alerts sharing it within `grouping.window` may share one message (also the backtest's)."""
    alert = decision.alert
    group_by = alert.group_by if alert else "rule"
    if group_by == "topic":
        topic = row.categories[0] if row.categories else "other"
        return f"topic:{topic}"
    return f"rule:{decision.rule_name}"
