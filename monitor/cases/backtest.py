"""Backtest a rules.yaml edit: replay stored mentions through two rule sets and diff what each would do.

Nothing is triaged again (the stored Score is used), nothing is written and nothing is posted.
Both rule sets are matched with the pipeline's own `evaluate`, and the case, storm-control and
acknowledgement decisions follow monitor/cases/pipeline.py and acknowledge.py.  What a replay
cannot know is approximated and said so in docs/rules.md ("Backtesting an edit"):
cases are not resolved during the period (the team's clicks are not replayed), so a later
mention of the same author in the same conversation attaches to the open case; the
acknowledgement cooldown counts only the automatic replies of the replay itself.  Each file's
`silences:` apply as they were in force when a post arrived; Slack mutes are not replayed.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.platforms import SOCIAL, is_private
from monitor.cases.acknowledge import auto_refusal, render
from monitor.cases.pipeline import ReplyPolicy, group_key, must_stand_alone
from monitor.model import Score
from monitor.rules import Decision, Ruleset, evaluate, format_duration
from monitor.rules.silences import muting
from monitor.rules.stored import StoredMention, facts_of

__all__ = ["Backtest", "Example", "Outcome", "backtest", "customer_outcomes"]

Alert = tuple[str, str]  # (rule, Slack channel)
Sla = tuple[str, int, bool]  # (rule, seconds, business hours)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one rule set does with one mention."""

    dropped: bool = False
    alert: Alert | None = None  # a new case and its Slack alert (own message or grouped)
    grouped: bool = False  # storm control folds the alert into a grouped message
    sla: Sla | None = None
    auto_reply: str = ""  # the rule whose automatic public reply would be posted ("" none)
    muted: str = ""  # the silence that muted its alert ("" none)


@dataclass(frozen=True, slots=True)
class Example:
    id: int
    platform: str
    author: str
    created_at: datetime | None
    text: str
    url: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "platform": self.platform, "author": self.author, "text": self.text,
                "url": self.url, "created_at": self.created_at.isoformat() if self.created_at else None}


@dataclass(slots=True)
class _Bucket:
    count: int = 0
    examples: list[Example] = field(default_factory=list)

    def add(self, row: StoredMention, *, keep: int) -> None:
        self.count += 1
        if len(self.examples) < keep:
            self.examples.append(Example(id=row.id, platform=row.platform, author=row.author,
                                         created_at=row.created_at, text=row.text, url=row.url))


@dataclass(slots=True)
class Totals:
    alerts: int = 0
    grouped: int = 0
    dropped: int = 0
    auto_replies: int = 0
    muted: int = 0


@dataclass(slots=True)
class Backtest:
    since: datetime
    until: datetime
    mentions: int = 0
    current: Totals = field(default_factory=Totals)
    proposed: Totals = field(default_factory=Totals)
    alerts_gained: dict[Alert, _Bucket] = field(default_factory=dict)
    alerts_lost: dict[Alert, _Bucket] = field(default_factory=dict)
    replies_gained: dict[str, _Bucket] = field(default_factory=dict)
    replies_lost: dict[str, _Bucket] = field(default_factory=dict)
    grouped_gained: dict[Alert, _Bucket] = field(default_factory=dict)
    grouped_lost: dict[Alert, _Bucket] = field(default_factory=dict)
    sla_changes: dict[tuple[Sla, Sla], _Bucket] = field(default_factory=dict)
    muted_gained: dict[str, _Bucket] = field(default_factory=dict)  # by silence
    muted_lost: dict[str, _Bucket] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any((self.alerts_gained, self.alerts_lost, self.replies_gained, self.replies_lost,
                    self.grouped_gained, self.grouped_lost, self.sla_changes, self.muted_gained,
                    self.muted_lost))

    def as_json(self) -> dict[str, Any]:
        def alerts(table: dict[Alert, _Bucket]) -> list[dict[str, Any]]:
            return [{"rule": rule, "channel": channel, "count": b.count,
                     "examples": [e.as_json() for e in b.examples]} for (rule, channel), b in _ordered(table)]

        def replies(table: dict[str, _Bucket], key: str = "rule") -> list[dict[str, Any]]:
            return [{key: name, "count": b.count, "examples": [e.as_json() for e in b.examples]}
                    for name, b in _ordered(table)]

        def sla(value: Sla) -> dict[str, Any]:
            return {"rule": value[0], "sla": format_duration(timedelta(seconds=value[1])),
                    "business_hours": value[2]}

        def totals(t: Totals) -> dict[str, int]:
            return {"alerts": t.alerts, "grouped": t.grouped, "dropped": t.dropped, "auto_replies": t.auto_replies,
                    "muted": t.muted}

        return {
            "since": self.since.isoformat(), "until": self.until.isoformat(), "mentions": self.mentions,
            "current": totals(self.current), "proposed": totals(self.proposed), "changed": self.changed,
            "alerts": {"gained": alerts(self.alerts_gained), "lost": alerts(self.alerts_lost)},
            "auto_replies": {"gained": replies(self.replies_gained), "lost": replies(self.replies_lost)},
            "grouped": {"gained": alerts(self.grouped_gained), "lost": alerts(self.grouped_lost)},
            "muted": {"gained": replies(self.muted_gained, "silence"), "lost": replies(self.muted_lost, "silence")},
            "sla_changes": [{"from": sla(old), "to": sla(new), "count": b.count,
                             "examples": [e.as_json() for e in b.examples]}
                            for (old, new), b in _ordered(self.sla_changes)],
        }


def _ordered(table: dict[Any, _Bucket]) -> list[tuple[Any, _Bucket]]:
    return sorted(table.items(), key=lambda item: (-item[1].count, str(item[0])))


class _Replay:
    """One rule set's pass over the mentions: cases, storm control, automatic replies."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.rules = ruleset
        self.open_cases: set[tuple[str, str, str]] = set()
        self.individual: dict[str, deque[datetime]] = defaultdict(deque)  # group key -> own alerts' times
        self.leader_at: dict[str, datetime] = {}
        self.in_channel: dict[str, deque[datetime]] = defaultdict(deque)  # channel -> own alerts' times
        self.last_ack: dict[tuple[str, str], datetime] = {}
        self.policies = {name: ReplyPolicy(platform=p) for name, p in SOCIAL.items()}

    def step(self, row: StoredMention, at: datetime) -> Outcome:
        decision = evaluate(self.rules, facts_of(row))
        if row.from_brand:
            return Outcome()
        if decision.dropped:
            return Outcome(dropped=True)
        key = (row.platform, row.conversation_id, row.author_id)
        alert = decision.alert
        if key in self.open_cases or alert is None:
            return Outcome()  # attaches to the open case, or raises nothing
        if self.rules.silences:  # the file's silences, as they were in force when the post arrived
            in_force = tuple(a for a in (s.active(at) for s in self.rules.silences) if a is not None)
            silence = muting(in_force, decision=decision, facts=facts_of(row),
                             author_ids=(row.author_handle, row.author_name, row.author_id))
            if silence is not None:
                return Outcome(muted=silence.label)
        self.open_cases.add(key)
        rule = decision.rule_name
        return Outcome(
            alert=(rule, self.rules.channel(alert.channel)),
            grouped=self._grouped(group_key(decision, row), at, channel=self.rules.channel(alert.channel),
                                  alone=must_stand_alone(self.rules.grouping, decision, row)),
            sla=(rule, int(alert.sla.total_seconds()), alert.business_hours),
            auto_reply=self._auto_reply(row, decision, at, dry_run=alert.dry_run),
        )

    def _grouped(self, key: str, at: datetime, *, channel: str = "", alone: bool = False) -> bool:
        """monitor/cases/pipeline.py `_queue_alert`: beyond max_alerts in the window, or beyond the
        channel's channel_max_alerts in channel_window, one grouped message."""
        grouping = self.rules.grouping
        times = self.individual[key]
        while times and times[0] < at - grouping.window:
            times.popleft()
        in_channel = self.in_channel[channel]
        while in_channel and in_channel[0] < at - grouping.channel_window:
            in_channel.popleft()
        if alone or not grouping.beyond_budget(len(times), in_channel=len(in_channel)):
            times.append(at)
            in_channel.append(at)
            return False
        leader = self.leader_at.get(key)
        if leader is None or leader < at - grouping.window:
            self.leader_at[key] = at
        return True

    def _auto_reply(self, row: StoredMention, decision: Decision, at: datetime, *, dry_run: bool) -> str:
        """monitor/cases/acknowledge.py `plan`: mode auto, allowed by the platform, outside the cooldown."""
        ack = decision.acknowledge
        if ack is None or ack.mode != "auto" or not ack.template:
            return ""
        if dry_run or self.rules.ack_dry_run(ack):
            return ""
        policy = self.policies.get(row.platform)
        template = ack.private_template if is_private(row.kind) and ack.private_template else ack.template
        text, _ = render(self.rules, template=template, mention=row, policy=policy)  # type: ignore[arg-type]
        if auto_refusal(policy=policy, mention=row, text=text):  # type: ignore[arg-type]
            return ""
        author = (row.platform, row.author_id)
        last = self.last_ack.get(author)
        if last is not None and last >= at - self.rules.acknowledgement.cooldown:
            return ""
        self.last_ack[author] = at
        rule = next((r.name for r in decision.matched if r.acknowledge is ack), decision.rule_name)
        return rule


def backtest(
    mentions: Iterable[StoredMention], *, current: Ruleset, proposed: Ruleset, since: datetime, until: datetime,
    examples: int = 3,
) -> Backtest:
    """Replay `mentions` (oldest first) through both rule sets and collect the differences."""
    result = Backtest(since=since, until=until)
    old_side, new_side = _Replay(current), _Replay(proposed)
    for row in mentions:
        at = row.created_at or until
        old, new = old_side.step(row, at), new_side.step(row, at)
        result.mentions += 1
        _count(result.current, old)
        _count(result.proposed, new)
        if old == new:
            continue
        if old.alert != new.alert:
            if old.alert is not None:
                result.alerts_lost.setdefault(old.alert, _Bucket()).add(row, keep=examples)
            if new.alert is not None:
                result.alerts_gained.setdefault(new.alert, _Bucket()).add(row, keep=examples)
        if old.grouped != new.grouped or (old.grouped and old.alert != new.alert):
            if old.grouped and old.alert is not None:
                result.grouped_lost.setdefault(old.alert, _Bucket()).add(row, keep=examples)
            if new.grouped and new.alert is not None:
                result.grouped_gained.setdefault(new.alert, _Bucket()).add(row, keep=examples)
        if old.auto_reply != new.auto_reply:
            if old.auto_reply:
                result.replies_lost.setdefault(old.auto_reply, _Bucket()).add(row, keep=examples)
            if new.auto_reply:
                result.replies_gained.setdefault(new.auto_reply, _Bucket()).add(row, keep=examples)
        if old.muted != new.muted:
            if old.muted:
                result.muted_lost.setdefault(old.muted, _Bucket()).add(row, keep=examples)
            if new.muted:
                result.muted_gained.setdefault(new.muted, _Bucket()).add(row, keep=examples)
        if old.sla is not None and new.sla is not None and old.sla[1:] != new.sla[1:]:
            result.sla_changes.setdefault((old.sla, new.sla), _Bucket()).add(row, keep=examples)
    return result


def _count(totals: Totals, outcome: Outcome) -> None:
    totals.alerts += outcome.alert is not None
    totals.grouped += outcome.grouped
    totals.dropped += outcome.dropped
    totals.auto_replies += bool(outcome.auto_reply)
    totals.muted += bool(outcome.muted)



def customer_outcomes(texts: Sequence[str], scores: Sequence[Score], *, ruleset: Ruleset) -> list[Outcome]:
    """What `ruleset` does with each of `texts` (with its triage score) as an X @mention of the brand, replayed
    as `backtest` replays stored mentions, each from a different customer (no followers, not verified, a
    minute apart, its own conversation, fetched by the rules' X mentions source): what `mention-monitor eval
    --rules` and scripts/eval_heldout.py measure (each post alone: no follow-up attaches to another's case,
    no cooldown is shared)."""
    start = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)  # any time: business hours decide SLAs, not alerts
    source = next((s.name for s in ruleset.sources if s.platform == "x" and s.kind == "mention"), "")
    replay = _Replay(ruleset)
    return [
        replay.step(StoredMention(
            id=i + 1, platform="x", kind="mention", source=source, external_id=str(i + 1), conversation_id=str(i + 1),
            author_id=f"customer-{i + 1}", author_handle=f"customer{i + 1}", author_name="", author_followers=0,
            author_verified=False, text=text, url="", mentions_brand=True, from_brand=False,
            created_at=start + timedelta(minutes=i), lang=score.lang, sentiment=score.sentiment,
            complaint=score.complaint, categories=tuple(score.categories), rule="", case_id=None),
            start + timedelta(minutes=i))
        for i, (text, score) in enumerate(zip(texts, scores, strict=True))
    ]
