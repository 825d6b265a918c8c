"""The scheduled digest: a short summary and the charts, posted to Slack daily or weekly (rules.yaml `digest:`).

The daemon's sweep calls `queue_digest`: once the period's scheduled time has passed, it moves
`digest_last_sent` (compare-and-set, so two replicas never both queue it) and writes the period's
outbox row (dedup key `digest:<scheduled time>`) in one transaction.  The outbox delivers it like
every other side effect, retrying a Slack failure with the DELIVERIES back-off; `compose` is what
it posts.  `post_digest` posts at once, without the outbox (a failed post gives the period back).
"""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor import messages as msg
from monitor.delivery import outbox
from monitor.delivery.outbox import FilesMessage
from monitor.model import OutboxKind, Setting
from monitor.process import child_env
from monitor.report.kpis import Report, report_for
from monitor.report.render import summary_text
from monitor.rules.business_hours import DAYS, parse_clock
from monitor.rules.schema import Ruleset
from monitor.store import get_setting, set_setting, transaction

if TYPE_CHECKING:
    from connectors.base import Notifier

log = logging.getLogger(__name__)

LAST_SENT_KEY = "digest_last_sent"
DIGEST_KEY_PREFIX = "digest:"  # + the scheduled time: the outbox row of one period's digest


def scheduled_at(*, ruleset: Ruleset, now: datetime) -> datetime | None:
    """The latest scheduled digest time at or before `now` (UTC), or None if the rules have no digest."""
    digest = ruleset.digest
    if digest is None:
        return None
    zone = ZoneInfo(ruleset.business_hours.timezone)
    local_now = now.astimezone(zone)
    at = parse_clock(digest.at)
    # wall-clock arithmetic on a naive local time, then localised: a DST change keeps "09:00" at 09:00
    candidate = local_now.replace(tzinfo=None, hour=at.hour, minute=at.minute, second=0, microsecond=0)
    if digest.every == "weekly":
        candidate -= timedelta(days=(candidate.weekday() - DAYS.index(digest.day)) % 7)
        step = timedelta(days=7)
    else:
        step = timedelta(days=1)
    if candidate.replace(tzinfo=zone) > local_now:
        candidate -= step
    return candidate.replace(tzinfo=zone).astimezone(now.tzinfo or ZoneInfo("UTC"))


def period_of(*, ruleset: Ruleset, at: datetime) -> tuple[datetime, datetime]:
    """[since, until) the digest sent at `at` covers: the whole local days before it (the previous
    day, or the seven days before the digest's day: Monday to Sunday for a Monday digest)."""
    assert ruleset.digest is not None
    zone = ZoneInfo(ruleset.business_hours.timezone)
    midnight = at.astimezone(zone).replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    days = 7 if ruleset.digest.every == "weekly" else 1
    since = (midnight - timedelta(days=days)).replace(tzinfo=zone)
    return since.astimezone(at.tzinfo), midnight.replace(tzinfo=zone).astimezone(at.tzinfo)


def digest_due(*, ruleset: Ruleset, last_sent: datetime | None, now: datetime) -> bool:
    """True once per period: the scheduled time has passed and no digest went out since it."""
    due = scheduled_at(ruleset=ruleset, now=now)
    if due is None:
        return False
    return last_sent is None or last_sent < due


def last_sent(engine: Engine) -> datetime | None:
    with Session(engine) as s:
        value = get_setting(s, LAST_SENT_KEY)
    return datetime.fromisoformat(value) if value else None


def start_counting(engine: Engine, *, now: datetime) -> bool:
    """On a daemon's first run, mark `now` as the last digest: the first one then comes at the
    next scheduled time (covering the days since), not at once with an empty period."""
    return _claim(engine, old=None, new=now)


def _pending(engine: Engine, *, ruleset: Ruleset, now: datetime) -> tuple[datetime, datetime | None] | None:
    """(the scheduled time of the period to send now, when the last digest went out), or None if
    none is due."""
    due = scheduled_at(ruleset=ruleset, now=now)
    if due is None or ruleset.digest is None:
        return None
    previous = last_sent(engine)
    if not digest_due(ruleset=ruleset, last_sent=previous, now=now):
        return None
    return due, previous


def queue_digest(engine: Engine, *, ruleset: Ruleset, now: datetime) -> bool:
    """Queue the digest of the period that ended at the latest scheduled time, once: False if it is
    not due, or another replica (or an earlier sweep) queued it."""
    pending = _pending(engine, ruleset=ruleset, now=now)
    if pending is None:
        return False
    due, previous = pending
    with transaction(engine) as s:
        if not _move(s, old=previous, new=now):
            return False
        outbox.add(s, kind=OutboxKind.DIGEST, dedup_key=f"{DIGEST_KEY_PREFIX}{due.isoformat()}", now=now,
                   target=ruleset.channel(ruleset.digest.channel), payload={"due": due.isoformat()})
    return True


def compose(*, engine: Engine, ruleset: Ruleset, due: datetime) -> FilesMessage:
    """The digest scheduled at `due`: its title, its summary text and its charts (drawn in a child process).
    ValueError when rules.yaml has no digest any more (it was removed while this one waited)."""
    if ruleset.digest is None:
        raise ValueError(msg.DIGEST_NOT_CONFIGURED)
    since, until = period_of(ruleset=ruleset, at=due)
    with Session(engine) as s:
        report = report_for(s, ruleset=ruleset, until=until, period=until - since)
    zone = ZoneInfo(ruleset.business_hours.timezone)
    start, end = since.astimezone(zone), (until - timedelta(seconds=1)).astimezone(zone)
    title = (msg.DIGEST_TITLE_WEEKLY if ruleset.digest.every == "weekly" else msg.DIGEST_TITLE_DAILY).format(
        start=start, end=end)
    return FilesMessage(title=title, comment=summary_text(report, title=title), files=render_charts(report))


def post_digest(*, engine: Engine, notifier: Notifier, ruleset: Ruleset, now: datetime) -> bool:
    """Post the digest of the period that ended at the latest scheduled time now, without the outbox;
    False if not due or another replica took it.  Connector errors propagate (the claim is given back first)."""
    pending = _pending(engine, ruleset=ruleset, now=now)
    if pending is None:
        return False
    due, previous = pending
    if not _claim(engine, old=previous, new=now):
        return False
    try:
        message = compose(engine=engine, ruleset=ruleset, due=due)
        notifier.upload_files(channel=ruleset.channel(ruleset.digest.channel), files=message.files,
                              title=message.title, initial_comment=message.comment)
    except BaseException:
        _claim(engine, old=now, new=previous)  # give the period back: the next sweep retries
        raise
    since, until = period_of(ruleset=ruleset, at=due)
    log.info("digest posted for %s .. %s", since.isoformat(), until.isoformat())
    return True


_RENDER_CHILD = "from monitor.report.digest import _render_child; _render_child()"


def render_charts(report: Report) -> list[tuple[str, bytes]]:
    """The report's charts as (file name, PNG), drawn in a short-lived child process: matplotlib
    (~30 MB) would otherwise stay loaded in the daemon until it restarts."""
    done = subprocess.run([sys.executable, "-c", _RENDER_CHILD], input=pickle.dumps(report), env=child_env(),
                          capture_output=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(msg.DIGEST_RENDER_FAILED.format(
            code=done.returncode, stderr=done.stderr.decode("utf-8", "replace")[-2000:]))
    return pickle.loads(done.stdout)  # noqa: S301 (our own child's output)


def _render_child() -> None:
    """The child's side of render_charts: a pickled Report on stdin, the pickled PNGs on stdout."""
    from monitor.report import charts

    report = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 (from our parent)
    sys.stdout.buffer.write(pickle.dumps([(name, png) for name, _, png in charts.chart_pngs(report)]))


def _claim(engine: Engine, *, old: datetime | None, new: datetime | None) -> bool:
    """Move digest_last_sent from `old` to `new` only if nobody changed it meanwhile."""
    with transaction(engine) as s:
        return _move(s, old=old, new=new)


def _move(s: Session, *, old: datetime | None, new: datetime | None) -> bool:
    """`_claim` inside the caller's transaction."""
    table = Setting.__table__
    old_value, new_value = (old.isoformat() if old else ""), (new.isoformat() if new else "")
    if old is None and s.get(Setting, LAST_SENT_KEY) is None:
        try:
            with s.begin_nested():
                set_setting(s, LAST_SENT_KEY, new_value)
                s.flush()
            return True
        except sa.exc.IntegrityError:
            return False
    changed = s.execute(sa.update(table).where(table.c.key == LAST_SENT_KEY, table.c.value == old_value)
                        .values(value=new_value)).rowcount
    return changed == 1
