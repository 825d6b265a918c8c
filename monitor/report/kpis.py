"""KPIs of one period as plain data: volume, busiest hours, response times, SLA attainment, complaints.

Pure functions over a database session; nothing here formats or draws (report_render.py,
charts.py do).  Which rows count where:

- mentions: created in [since, until), the brand's own posts excluded;
- cases: opened in [since, until) (volume, first response, SLA, repeat customers, DM share);
- breaches and resolutions: those that happened in [since, until);
- acknowledgements: public replies sent in [since, until), dry runs excluded;
- the hand-off to private messages, of the cases opened: handed off (acknowledged, or answered in
  private), moved to DM (the customer really wrote in private afterwards: a DM we sent does not
  count), the time from the hand-off to the customer's first private message, and resolved in DM
  (resolved after the customer moved, with no public reply of ours after their first private message).

The first response is the first reply by a person (from Slack or typed on the platform); the bot's
automatic acknowledgement is its own figure and never meets an SLA.

SLA attainment is judged as of `until`: met = first response at or before the due time;
missed = answered late, or still unanswered when the due time has passed; a case still
unanswered before its due time is not counted either way.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from connectors.platforms import PRIVATE_KINDS
from monitor.model import Case, Mention, Outbox, OutboxKind, OutboxState
from monitor.rules.schema import Ruleset

TOP_N = 5
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Small stopword lists of our own: enough to keep "the" and "og" out of the top keywords.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "a about after again all also am an and any are as at be been before being but by can could did do "
        "does doing don dont for from get got had has have having he her here hers him his how i im if in "
        "into is it its ive just me more most my no nor not now of off on once only or other our out over "
        "own same she so some still such than that the their them then there these they this those through "
        "to too under until up very was we were what when where which while who why will with would you "
        "your yours yet been one two day days week weeks".split()
    ),
    "da": frozenset(
        "af alle alt at blev bliver da de dem den denne der deres det dette du efter eller en end er et for "
        "fra har hun hvad hvis hvor i ikke jeg jer kan kun man mange med meget men mig min mit mod ned nu "
        "og om op os over på sig sin skal som stadig så til ud under var vi vil være".split()
    ),
    "hr": frozenset("a ali da do i ili je jos još još ka ko li mi na ne nije niti od po sa se su to u za što".split()),
    "ro": frozenset("a al am cu de din e este în la mai nu o pe sa să se si și un una".split()),
    "id": frozenset("ada aku dan di dari ini itu juga ke kami kita saya sudah tidak untuk yang".split()),
}
_TOKEN_RE = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
_STRIP_RE = re.compile(r"https?://\S+|[@#]\w+")


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class Attainment:
    """SLA attainment of one group of cases (a rule, an assignee, a day, or all)."""

    name: str
    met: int
    missed: int

    @property
    def counted(self) -> int:
        return self.met + self.missed

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.met / self.counted, 1) if self.counted else None


@dataclass(frozen=True, slots=True)
class ResponseSample:
    """One answered case: how long the first response took, against its target."""

    case_id: int
    rule: str
    seconds: float
    sla_seconds: int


@dataclass(frozen=True, slots=True)
class Report:
    since: datetime
    until: datetime
    timezone: str
    mentions: int
    by_platform: tuple[tuple[str, int], ...]  # most first
    by_kind: tuple[tuple[str, int], ...]
    by_language: tuple[tuple[str, int], ...]
    heatmap: tuple[tuple[int, ...], ...]  # 7 rows (Mon..Sun) x 24 hours, local time
    cases_opened: int
    first_response_median_s: float | None
    first_response_p90_s: float | None
    responses: tuple[ResponseSample, ...]
    sla_overall: Attainment
    sla_by_rule: tuple[Attainment, ...]
    sla_by_assignee: tuple[Attainment, ...]  # "(unassigned)" for cases nobody claimed
    sla_by_day: tuple[tuple[date, Attainment], ...]  # every local day of the period, in order
    breaches: int
    resolved: int
    repeat_customers: tuple[tuple[str, int], ...]  # (author, cases), authors with more than one case
    top_categories: tuple[tuple[str, int], ...]
    top_keywords: tuple[tuple[str, int], ...]
    moved_to_dm: int  # cases whose customer wrote in private after the hand-off
    acks_auto: int
    acks_approved: int
    auto_acknowledged: int = 0  # cases the bot acknowledged before any person answered
    auto_ack_median_s: float | None = None
    handed_off: int = 0  # cases acknowledged or answered in private: the talk was offered a private place
    handoff_to_dm_median_s: float | None = None  # hand-off -> the customer's first private message
    resolved_in_dm: int = 0

    @property
    def handoff_success_percent(self) -> float | None:
        """Of the hand-offs, how many the customer followed into private messages."""
        return round(100.0 * self.moved_to_dm / self.handed_off, 1) if self.handed_off else None

    @property
    def moved_to_dm_percent(self) -> float | None:
        return round(100.0 * self.moved_to_dm / self.cases_opened, 1) if self.cases_opened else None

    @property
    def busiest_hour(self) -> tuple[str, int, int] | None:
        """(weekday, hour, mentions) of the busiest hour of the week, or None without mentions."""
        best = max(((count, -d, -h) for d, row in enumerate(self.heatmap) for h, count in enumerate(row)),
                   default=(0, 0, 0))
        if best[0] == 0:
            return None
        return WEEKDAYS[-best[1]], -best[2], best[0]


# --------------------------------------------------------------------------- building


def build_report(
    session: Session, *, since: datetime, until: datetime, timezone: str = "UTC",
    brand_terms: Iterable[str] = (),
) -> Report:
    """Every KPI of [since, until), read from the database.  brand_terms are left out of the keywords."""
    zone = ZoneInfo(timezone)
    in_period = sa.and_(Mention.created_at >= since, Mention.created_at < until, Mention.from_brand.is_(False))

    def grouped(column: sa.ColumnElement) -> tuple[tuple[str, int], ...]:
        rows = session.exec(select(column, sa.func.count()).where(in_period).group_by(column)).all()
        return _ranked((str(k or "und"), int(n)) for k, n in rows)

    by_platform = grouped(Mention.platform)
    heatmap = [[0] * 24 for _ in range(7)]
    for created in session.exec(select(Mention.created_at).where(in_period)).all():
        local = created.astimezone(zone)
        heatmap[local.weekday()][local.hour] += 1

    cases = session.exec(select(Case).where(Case.opened_at >= since, Case.opened_at < until)
                         .order_by(Case.id)).all()
    responses = tuple(
        ResponseSample(case_id=c.id or 0, rule=c.rule, sla_seconds=c.sla_seconds,
                       seconds=(c.first_response_at - c.opened_at).total_seconds())
        for c in cases if c.first_response_at is not None and c.opened_at is not None and c.first_response_at < until
    )
    seconds = sorted(r.seconds for r in responses)
    # Human acknowledgements set the first response at the same moment; the bot's come before it, or alone.
    auto_acked = sorted(
        (c.acknowledged_at - c.opened_at).total_seconds() for c in cases
        if c.acknowledged_at is not None and c.opened_at is not None and c.acknowledged_at < until
        and (c.first_response_at is None or c.acknowledged_at < c.first_response_at))

    verdicts = [(c, _verdict(c, until=until)) for c in cases]
    judged = [(c, v) for c, v in verdicts if v is not None]

    def attainment(name: str, items: Iterable[tuple[Case, bool]]) -> Attainment:
        flags = [v for _, v in items]
        return Attainment(name=name, met=sum(flags), missed=len(flags) - sum(flags))

    def split(key: Callable[[Case], str]) -> tuple[Attainment, ...]:
        names = sorted({key(c) for c, _ in judged})
        return tuple(attainment(n, ((c, v) for c, v in judged if key(c) == n)) for n in names)

    days: list[tuple[date, Attainment]] = []
    day = since.astimezone(zone).date()
    last = (until - timedelta(microseconds=1)).astimezone(zone).date()
    while day <= last:
        todays = [(c, v) for c, v in judged if c.opened_at.astimezone(zone).date() == day]  # type: ignore[union-attr]
        days.append((day, attainment(day.isoformat(), todays)))
        day += timedelta(days=1)

    per_author = Counter((c.platform, c.author_id) for c in cases if c.author_id)
    handles = {(c.platform, c.author_id): c.author_handle or c.author_id for c in cases}
    repeat = _ranked((handles[k], n) for k, n in per_author.items() if n > 1)

    complaint_rows = session.exec(
        select(Mention.text, Mention.lang, Mention.categories, Mention.kind)
        .where(in_period, Mention.case_id.is_not(None))).all()
    categories = Counter(cat for _, _, cats, _ in complaint_rows for cat in set(cats or ()))
    # the words of private messages never reach a report, the digest channel or a chart
    keywords = top_keywords(((text, lang) for text, lang, _, kind in complaint_rows if kind not in PRIVATE_KINDS),
                            brand_terms=brand_terms)

    def happened(column: sa.ColumnElement) -> int:
        return int(session.exec(select(sa.func.count()).select_from(Case)
                                .where(column >= since, column < until)).one())

    acks = session.exec(select(Outbox.payload).where(
        Outbox.kind == OutboxKind.REPLY_PUBLIC.value, Outbox.state == OutboxState.SENT.value,
        Outbox.sent_at >= since, Outbox.sent_at < until)).all()
    real = [p for p in acks if not (p or {}).get("dry_run")]
    auto = sum(1 for p in real if p.get("actor") == "auto")
    handed_off = [c for c in cases if c.acknowledged_at is not None and c.acknowledged_at < until]
    moved = [c for c in cases if c.moved_to_dm and (c.customer_dm_at is None or c.customer_dm_at < until)]
    to_dm = sorted((c.customer_dm_at - c.acknowledged_at).total_seconds() for c in moved
                   if c.acknowledged_at is not None and c.customer_dm_at is not None)

    return Report(
        since=since, until=until, timezone=timezone,
        mentions=sum(n for _, n in by_platform), by_platform=by_platform, by_kind=grouped(Mention.kind),
        by_language=grouped(Mention.lang), heatmap=tuple(tuple(row) for row in heatmap),
        cases_opened=len(cases),
        first_response_median_s=_tenths(percentile(seconds, 50)),
        first_response_p90_s=_tenths(percentile(seconds, 90)),
        responses=responses,
        sla_overall=attainment("all", judged),
        sla_by_rule=split(lambda c: c.rule or "(none)"),
        sla_by_assignee=split(lambda c: c.assignee or "(unassigned)"),
        sla_by_day=tuple(days),
        breaches=happened(Case.breached_at), resolved=happened(Case.resolved_at),
        repeat_customers=repeat, top_categories=_ranked(categories.items())[:TOP_N],
        top_keywords=keywords, moved_to_dm=len(moved),
        acks_auto=auto, acks_approved=len(real) - auto,
        auto_acknowledged=len(auto_acked), auto_ack_median_s=_tenths(percentile(auto_acked, 50)),
        handed_off=len(handed_off), handoff_to_dm_median_s=_tenths(percentile(to_dm, 50)),
        resolved_in_dm=_resolved_in_dm(session, moved, until=until),
    )


def _resolved_in_dm(session: Session, moved: Sequence[Case], *, until: datetime) -> int:
    """Moved cases resolved before `until` with no public reply of ours sent after the first private message."""
    done = [c for c in moved if c.resolved_at is not None and c.resolved_at < until]
    if not done:
        return 0
    public = session.exec(select(Outbox.case_id, Outbox.sent_at).where(
        Outbox.case_id.in_([c.id for c in done]), Outbox.kind == OutboxKind.REPLY_PUBLIC.value,
        Outbox.state == OutboxState.SENT.value)).all()
    later = {case_id for c in done for case_id, sent in public
             if case_id == c.id and sent is not None and c.customer_dm_at is not None and sent > c.customer_dm_at}
    return sum(1 for c in done if c.id not in later)


def _verdict(case: Case, *, until: datetime) -> bool | None:
    """True met, False missed, None not judged (no target, or unanswered and not yet due)."""
    due = case.sla_due_at
    if due is None or case.sla_seconds <= 0:
        return None
    answered = case.first_response_at if case.first_response_at and case.first_response_at < until else None
    if answered is not None:
        return answered <= due
    return False if due <= until else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); the 50th is the usual median."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def top_keywords(
    texts: Iterable[tuple[str, str]], *, brand_terms: Iterable[str] = (), limit: int = TOP_N,
) -> tuple[tuple[str, int], ...]:
    """Most frequent words of (text, language) pairs, without stopwords, handles, links or brand names.
    A word counts once per text, so one long rant cannot top the list alone."""
    brand = {t.lower().lstrip("@") for term in brand_terms for t in term.split()}
    counts: Counter[str] = Counter()
    for text, lang in texts:
        stop = STOPWORDS["en"] | STOPWORDS.get(lang or "", frozenset())
        words = {w.strip("'’-") for w in _TOKEN_RE.findall(_STRIP_RE.sub(" ", text.lower()))}
        counts.update(w for w in words if len(w) >= 3 and w not in stop and w not in brand)
    return _ranked(counts.items())[:limit]


def _tenths(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _ranked(items: Iterable[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    """Most first; ties alphabetically, so output is stable."""
    return tuple(sorted(items, key=lambda kv: (-kv[1], kv[0])))


def brand_terms_of(ruleset: Ruleset) -> tuple[str, ...]:
    """Names the brand is called by (they top every keyword list otherwise)."""
    brand = ruleset.brand
    handles = brand.handles
    return tuple(t for t in (brand.name, handles.x or "", handles.facebook or "", *brand.keywords) if t)


def report_for(
    session: Session, *, ruleset: Ruleset, until: datetime, period: timedelta,
) -> Report:
    """The report of the `period` before `until`, in the rules' timezone and without brand names."""
    return build_report(session, since=until - period, until=until, timezone=ruleset.business_hours.timezone,
                        brand_terms=brand_terms_of(ruleset))
