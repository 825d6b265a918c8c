"""Silences: mute an author, a keyword or a rule until a time (the `silences:` section, and Slack mutes).

A silence mutes a mention's alert: the mention is still stored and counted, no case is opened,
nothing is posted for it.  It never mutes a VIP or critical alert (severity `critical`, or an
alert to the channel alias `vip`) unless it says `include_vip: true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr, model_validator

from monitor import messages as msg
from monitor.rules.business_hours import rules_error

if TYPE_CHECKING:  # match.py imports the schema, which imports this module
    from monitor.rules.match import Decision, MentionFacts

__all__ = ["ActiveSilence", "Silence", "SilenceMatch", "is_protected", "muting"]

VIP_ALIAS = "vip"


def _moment(value: Any) -> Any:
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, date):
        raise rules_error(msg.RULES_SILENCE_TIME, value=value.isoformat())
    elif isinstance(value, str):
        try:
            found = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise rules_error(msg.RULES_SILENCE_TIME, value=value) from None
    else:
        return value  # pydantic says what type it wanted
    if found.tzinfo is None:
        raise rules_error(msg.RULES_SILENCE_ZONE, value=value)
    return datetime.fromtimestamp(found.timestamp(), UTC)


def _duration(value: Any) -> Any:
    from monitor.rules.schema import _positive_duration

    return _positive_duration(value)


Moment = Annotated[datetime, BeforeValidator(_moment)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SilenceMatch(_Model):
    """Several keys must all hold: `{author: "@spammer", keyword: giveaway}` mutes only their giveaway posts."""

    author: StrictStr | None = None  # @handle, display name or platform id
    keyword: StrictStr | None = None  # matched like a rule's keywords_any (case and accents ignored)
    rule: StrictStr | None = None  # the rule that would alert

    @model_validator(mode="after")
    def _something(self) -> SilenceMatch:
        if not any((self.author, self.keyword, self.rule)):
            raise rules_error(msg.RULES_SILENCE_EMPTY_MATCH)
        return self


class Silence(_Model):
    match: SilenceMatch
    from_: Moment | None = Field(default=None, alias="from")
    until: Moment | None = None
    for_: PositiveDuration | None = Field(default=None, alias="for")
    comment: StrictStr = ""
    include_vip: StrictBool = False

    @model_validator(mode="after")
    def _ends(self) -> Silence:
        if self.until is not None and self.for_ is not None:
            raise rules_error(msg.RULES_SILENCE_BOTH_ENDS)
        if self.for_ is not None and self.from_ is None:
            raise rules_error(msg.RULES_SILENCE_FOR_NEEDS_FROM)
        if self.until is None and self.for_ is None:
            raise rules_error(msg.RULES_SILENCE_NO_END)
        if self.from_ is not None and self.ends_at <= self.from_:
            raise rules_error(msg.RULES_SILENCE_ORDER, until=f"{self.ends_at:%Y-%m-%d %H:%M} UTC",
                              start=f"{self.from_:%Y-%m-%d %H:%M} UTC")
        return self

    @property
    def ends_at(self) -> datetime:
        if self.until is not None:
            return self.until
        assert self.from_ is not None and self.for_ is not None
        return self.from_ + self.for_

    def active(self, now: datetime) -> ActiveSilence | None:
        if now >= self.ends_at or (self.from_ is not None and now < self.from_):
            return None
        return ActiveSilence(author=self.match.author, keyword=self.match.keyword, rule=self.match.rule,
                             until=self.ends_at, include_vip=self.include_vip, comment=self.comment)


@dataclass(frozen=True, slots=True)
class ActiveSilence:
    """One silence in force, from rules.yaml (`id` None) or from Slack (a stored row's id)."""

    until: datetime
    author: str | None = None
    keyword: str | None = None
    rule: str | None = None
    include_vip: bool = False
    comment: str = ""
    id: int | None = None
    created_by: str = ""

    @property
    def label(self) -> str:
        parts = []
        if self.author:
            parts.append(msg.SILENCE_AUTHOR.format(value=self.author))
        if self.keyword:
            parts.append(msg.SILENCE_KEYWORD.format(value=self.keyword))
        if self.rule:
            parts.append(msg.SILENCE_RULE.format(value=self.rule))
        return ", ".join(parts) + (msg.SILENCE_VIP if self.include_vip else "")

    def mutes(self, *, decision: Decision, facts: MentionFacts, author_ids: tuple[str, ...]) -> bool:
        """Whether this silence mutes the alert `decision` raises for the mention."""
        if decision.alert is None:
            return False
        if not self.include_vip and is_protected(decision):
            return False
        if self.rule is not None and decision.rule_name != self.rule:
            return False
        if self.author is not None and not _same_author(self.author, author_ids):
            return False
        if self.keyword is None:
            return True
        from monitor.rules.match import keyword_found, normalize_text

        return keyword_found(self.keyword, normalize_text(facts.text))


def is_protected(decision: Decision) -> bool:
    """VIP or critical: severity `critical`, or an alert to the channel alias `vip`."""
    alert = decision.alert
    return alert is not None and (alert.severity == "critical" or alert.channel == VIP_ALIAS)


def _same_author(wanted: str, author_ids: tuple[str, ...]) -> bool:
    target = wanted.strip().lstrip("@").casefold()
    return any(target == value.lstrip("@").casefold() for value in author_ids if value)


def muting(silences: tuple[ActiveSilence, ...], *, decision: Decision, facts: MentionFacts,
           author_ids: tuple[str, ...]) -> ActiveSilence | None:
    """The first silence that mutes this alert, if any."""
    for silence in silences:
        if silence.mutes(decision=decision, facts=facts, author_ids=author_ids):
            return silence
    return None
