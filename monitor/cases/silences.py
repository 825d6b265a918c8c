"""Silences in force: rules.yaml's `silences:` plus the mutes set from Slack, and what they mute.

The matching itself is monitor/rules/silences.py.  Here: reading the stored mutes, adding and
lifting them (from the Slack button and `/mentions mute`), muting a page's decisions for the
pipeline, and recording each muted mention so it is still counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor.model import Mute, MutedMention
from monitor.rules import Decision, MentionFacts, Ruleset
from monitor.rules.silences import ActiveSilence, muting
from monitor.store import transaction

__all__ = ["MAX_SLACK_MUTE", "active_silences", "add_mute", "lift_mute", "mute_decisions", "muted_between",
           "record_muted"]

MAX_SLACK_MUTE = timedelta(days=7)  # longer silences belong in rules.yaml, where they are reviewed


def _active(row: Mute) -> ActiveSilence:
    assert row.until is not None
    return ActiveSilence(until=row.until, author=row.author or None, keyword=row.keyword or None,
                         rule=row.rule or None, include_vip=row.include_vip, comment=row.comment, id=row.id,
                         created_by=row.created_by)


# Built once: every page asks, and building the statement and its cache key cost more than running it.
_IN_FORCE = select(Mute).where(Mute.lifted_at.is_(None), Mute.until > sa.bindparam("now")).order_by(Mute.until, Mute.id)


def active_silences(session: Session, *, ruleset: Ruleset, now: datetime) -> tuple[ActiveSilence, ...]:
    """rules.yaml's silences in force at `now`, then the Slack mutes, soonest to end first."""
    from_file = [s for s in (silence.active(now) for silence in ruleset.silences) if s is not None]
    stored = session.exec(_IN_FORCE, params={"now": now}).all()
    return tuple(sorted([*from_file, *(_active(row) for row in stored)], key=lambda a: a.until))


def add_mute(engine: Engine, *, user: str, now: datetime, duration: timedelta, author: str = "",
             keyword: str = "", rule: str = "", comment: str = "", include_vip: bool = False) -> ActiveSilence:
    with transaction(engine) as s:
        row = Mute(author=author, keyword=keyword, rule=rule, include_vip=include_vip, comment=comment,
                   created_by=user, created_at=now, until=now + duration)
        s.add(row)
        s.flush()
        return _active(row)


def lift_mute(engine: Engine, *, mute_id: int, user: str, now: datetime) -> ActiveSilence | None:
    """End a Slack mute now; None if there is no such mute in force."""
    with transaction(engine) as s:
        row = s.get(Mute, mute_id)
        if row is None or row.lifted_at is not None or row.until is None or row.until <= now:
            return None
        row.lifted_at, row.lifted_by = now, user
        s.add(row)
        return _active(row)


def mute_decisions(
    silences: Sequence[ActiveSilence], *, facts: Sequence[MentionFacts], decisions: Sequence[Decision],
    authors: Sequence[tuple[str, ...]],
) -> tuple[list[Decision], dict[int, ActiveSilence]]:
    """The decisions with muted alerts (and their acknowledgements) taken out; which index was muted by what."""
    if not silences:
        return list(decisions), {}
    out: list[Decision] = []
    muted: dict[int, ActiveSilence] = {}
    for index, (fact, decision, author_ids) in enumerate(zip(facts, decisions, authors, strict=True)):
        silence = muting(tuple(silences), decision=decision, facts=fact, author_ids=author_ids)
        if silence is None:
            out.append(decision)
            continue
        muted[index] = silence
        out.append(replace(decision, alert=None, acknowledge=None))  # rule_name stays: the muted rule
    return out, muted


def record_muted(session: Session, *, rows: Sequence[tuple[int, str, ActiveSilence]], now: datetime) -> None:
    """One MutedMention per (mention id, muted rule, silence)."""
    for mention_id, rule, silence in rows:
        session.add(MutedMention(mention_id=mention_id, at=now, rule=rule, silence=silence.label,
                                 mute_id=silence.id))


def muted_between(session: Session, *, since: datetime, until: datetime) -> int:
    query: Any = select(sa.func.count()).select_from(MutedMention).where(
        MutedMention.at >= since, MutedMention.at < until)
    return int(session.exec(query).one())


# --------------------------------------------------------------------------- Slack: the mute command


SLACK_MUTE_DURATION = timedelta(hours=4)  # the alert's "Mute 4 h" menu


def parse_mute(text: str, *, ruleset: Ruleset) -> dict[str, Any] | str:
    """`author @name 4h [comment]`, `keyword "free lamp" 2h`, `rule NAME 30m` -> add_mute's arguments,
    or the sentence that says what is wrong."""
    import difflib
    import shlex

    from monitor import messages as msg
    from monitor.rules import parse_duration

    try:
        words = shlex.split(text)
    except ValueError:
        return msg.SLACK_MUTE_HELP
    if len(words) < 3 or words[0].lower() not in ("author", "keyword", "rule"):
        return msg.SLACK_MUTE_HELP
    kind, value, length = words[0].lower(), words[1], words[2]
    try:
        duration = parse_duration(length)
    except ValueError:
        return msg.SLACK_MUTE_BAD_DURATION.format(value=length)
    if duration <= timedelta(0):
        return msg.SLACK_MUTE_BAD_DURATION.format(value=length)
    if duration > MAX_SLACK_MUTE:
        return msg.SLACK_MUTE_TOO_LONG.format(limit="7 days")
    if kind == "rule":
        names = [r.name for r in ruleset.rules]
        if value not in names:
            close = difflib.get_close_matches(value, names, n=1, cutoff=0.6)
            hint = msg.CLI_DID_YOU_MEAN.format(suggestion=close[0]) if close else ""
            return msg.SLACK_MUTE_UNKNOWN_RULE.format(name=value, hint=hint)
    if kind == "author" and not value.startswith("@") and not value.isdigit():
        value = "@" + value
    return {kind: value, "duration": duration, "comment": " ".join(words[3:])}


def local_clock(when: datetime, *, now: datetime, tz: str) -> str:
    """14:32 today, "Tue 24 Nov 09:00" another day, in the team's time zone (as the alerts show times)."""
    from zoneinfo import ZoneInfo

    local, local_now = when.astimezone(ZoneInfo(tz or "UTC")), now.astimezone(ZoneInfo(tz or "UTC"))
    return local.strftime("%H:%M") if local.date() == local_now.date() else local.strftime("%a %d %b %H:%M")
