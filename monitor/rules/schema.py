"""The rules.yaml (version 1) schema: frozen pydantic models, strict about unknown keys.

Checks that look at one value or one section live here; checks that relate
sections to each other (templates, channel aliases, names) live in the
cross-reference pass of monitor/rules/load.py.  docs/rules.md documents every key.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from connectors.platforms import PLATFORMS
from monitor import messages as msg
from monitor.rules.business_hours import DAYS, BusinessHours, Day, parse_clock, rules_error
from monitor.rules.silences import Silence

__all__ = [
    "AckAction", "Acknowledgement", "AlertAction", "Brand", "BusinessHours", "Condition", "Digest",
    "Escalation", "EscalationStep", "Grouping", "Rule", "Ruleset", "SlackSettings", "Source",
    "Spike", "parse_duration", "CATEGORIES", "TEMPLATE_VARIABLES", "SOURCE_KINDS", "DAYS",
]

CATEGORIES = (
    "delivery", "wrong_item", "damaged", "refund", "billing", "account",
    "no_response", "cancellation", "churn_threat", "question",
)
TEMPLATE_VARIABLES = ("author", "brand", "eta", "agent", "dm_link")
# Which kinds each platform's connector can fetch.
SOURCE_KINDS: dict[str, tuple[str, ...]] = {name: p.kinds for name, p in PLATFORMS.items()}

_DURATION_RE = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SLACK_ID_RE = re.compile(r"^[UWS][A-Z0-9]{2,}$")
_LANG_RE = re.compile(r"^[a-z]{2,3}$")


def parse_duration(text: str | int | float) -> timedelta:
    """"90s", "30m", "2h", "1d", "1w" or a sum like "1h30m" -> timedelta.

    A bare number is refused: 60 could be seconds or minutes, and guessing
    wrong would silently stretch an SLA sixty-fold.
    """
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(msg.RULES_DURATION.format(value=text))
    if isinstance(text, int | float):
        raise ValueError(msg.RULES_DURATION_NO_UNIT.format(value=text))
    compact = text.strip().lower()
    if compact.isdigit():
        raise ValueError(msg.RULES_DURATION_NO_UNIT.format(value=compact))
    parts = _DURATION_RE.findall(compact)
    if not parts or _DURATION_RE.sub("", compact).strip():
        raise ValueError(msg.RULES_DURATION.format(value=text))
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise rules_error("{text}", text=str(exc)) from exc


def _positive_duration(value: Any) -> timedelta:
    result = _duration(value)
    if result <= timedelta(0):
        raise rules_error(msg.RULES_DURATION_ZERO)
    return result


def _id_string(value: Any) -> Any:
    # Long numeric ids written without quotes arrive as ints; Python ints are exact, so keep them.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _slack_id(value: Any) -> Any:
    if isinstance(value, str) and not _SLACK_ID_RE.match(value):
        raise rules_error(msg.RULES_SLACK_ID, value=value)
    return value


def _language(value: Any) -> Any:
    if isinstance(value, str) and not _LANG_RE.match(value):
        raise rules_error(msg.RULES_LANGUAGE_CODE, value=value)
    return value


def _clock(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parse_clock(value)
        except ValueError as exc:
            raise rules_error("{text}", text=str(exc)) from exc
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_positive_duration)]
IdString = Annotated[StrictStr, BeforeValidator(_id_string)]
SlackId = Annotated[StrictStr, BeforeValidator(_slack_id)]
Language = Annotated[StrictStr, BeforeValidator(_language)]
Clock = Annotated[StrictStr, BeforeValidator(_clock)]
Platform = Literal["x", "facebook", "replay"]
Kind = Literal["mention", "search", "comment", "message", "own", "dm"]
Severity = Literal["low", "normal", "high", "critical"]
Category = Literal[
    "delivery", "wrong_item", "damaged", "refund", "billing", "account",
    "no_response", "cancellation", "churn_threat", "question",
]
Number = StrictFloat  # strict floats still accept whole numbers
NonEmptyStrs = Annotated[tuple[StrictStr, ...], Field(min_length=1)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- brand, sources, slack


class Handles(_Model):
    x: StrictStr | None = None
    facebook: StrictStr | None = None

    @field_validator("x")
    @classmethod
    def _no_at(cls, value: str | None) -> str | None:
        # People write "@nordlysshop"; the API wants the bare handle.
        return value.lstrip("@") if value else value


class Brand(_Model):
    name: StrictStr
    default_language: Language = "en"
    languages: tuple[Language, ...] = ("en",)
    handles: Handles = Handles()
    x_user_id: IdString = ""
    facebook_page_id: IdString = ""
    keywords: tuple[StrictStr, ...] = ()

    @model_validator(mode="after")
    def _default_listed(self) -> Brand:
        if self.default_language not in self.languages:
            raise rules_error(
                msg.RULES_DEFAULT_LANGUAGE, named=True, lang=self.default_language, languages=", ".join(self.languages)
            )
        return self


class Source(_Model):
    name: StrictStr
    platform: Platform
    kind: Kind
    query: StrictStr = ""
    every: PositiveDuration = timedelta(seconds=60)
    path: StrictStr = ""  # replay only: the JSONL file to play

    @model_validator(mode="after")
    def _consistent(self) -> Source:
        kinds = SOURCE_KINDS[self.platform]
        if self.kind not in kinds:
            raise rules_error(
                msg.RULES_SOURCE_KIND, named=True, name=self.name, platform=self.platform, kind=self.kind,
                choices=", ".join(kinds),
            )
        if self.platform == "x" and self.kind == "search" and not self.query.strip():
            raise rules_error(msg.RULES_SEARCH_QUERY, named=True, name=self.name)
        if self.query and self.kind != "search":
            raise rules_error(msg.RULES_QUERY_NOT_SEARCH, named=True, name=self.name, kind=self.kind)
        if self.platform == "replay" and not self.path:
            raise rules_error(msg.RULES_REPLAY_PATH, named=True, name=self.name)
        return self


class SlackSettings(_Model):
    approvers: tuple[SlackId, ...] = ()  # who may trigger public posts (users U/W, groups S)
    oncall: SlackId | None = None  # named in warnings when nobody claimed the case


# --------------------------------------------------------------------------- time and noise


class EscalationStep(_Model):
    after: Duration  # time after the breach
    channel: StrictStr  # channel alias
    notify: tuple[SlackId, ...] = ()


class Escalation(_Model):
    warn_at: Number = 0.75
    steps: tuple[EscalationStep, ...] = ()

    @field_validator("warn_at")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value < 1:
            hint = msg.RULES_PERCENT_HINT.format(fraction=value / 100, percent=value) if 2 <= value < 100 else ""
            raise rules_error(msg.RULES_WARN_AT, value=f"{value:g}", hint=hint)
        return value


NEVER_GROUPED = ("critical", "vip", "verified")  # what `grouping.never` may name


class Grouping(_Model):
    window: PositiveDuration = timedelta(minutes=2)
    max_alerts: StrictInt = Field(default=3, ge=1)
    # alerts always posted on their own: severity critical, an alert to the `vip` channel alias,
    # an author the platform verified ([] groups everything beyond max_alerts)
    never: tuple[Literal["critical", "vip", "verified"], ...] = NEVER_GROUPED
    # The channel's budget, across all rules: at most `channel_max_alerts` alerts of their own in
    # `channel_window`; beyond it a groupable alert joins its group's message even within its key's
    # `max_alerts` (what `never` names still goes alone, and counts).
    channel_max_alerts: StrictInt = Field(default=10, ge=1)
    channel_window: PositiveDuration = timedelta(minutes=1)

    def beyond_budget(self, individual: int, *, in_channel: int = 0) -> bool:
        """Storm control's count: the first `max_alerts` alerts of a key in the window go out one by
        one, the rest share a grouped message; and a channel that had `channel_max_alerts` alerts of
        their own in `channel_window` groups what is groupable (the pipeline and the backtest both ask this)."""
        return individual >= self.max_alerts or in_channel >= self.channel_max_alerts


class Spike(_Model):
    window: PositiveDuration = timedelta(minutes=15)
    history: PositiveDuration = timedelta(hours=24)
    k: Number = Field(default=3.0, gt=0)
    min_count: StrictInt = Field(default=10, ge=1)
    channel: StrictStr = "alerts"

    @model_validator(mode="after")
    def _history_longer(self) -> Spike:
        if self.history <= self.window:
            raise rules_error(msg.RULES_SPIKE_HISTORY, named=True, history=_fmt(self.history), window=_fmt(self.window))
        return self


class Acknowledgement(_Model):
    cooldown: Duration = timedelta(hours=24)  # per author: at most one acknowledgement in this time
    dry_run: StrictBool = False
    dm_link: StrictBool = True
    allow_urls: StrictBool = False
    # A private message (X DM, Messenger) from a customer whose case was handed off continues that case
    # while it is open, and for this long after it was resolved.
    private_followup: Duration = timedelta(days=7)


class Digest(_Model):
    every: Literal["daily", "weekly"] = "weekly"
    day: Day = "mon"
    at: Clock = "09:00"
    channel: StrictStr = "digest"


# --------------------------------------------------------------------------- rules


class Range(_Model):
    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _sensible(self) -> Range:
        if self.min is None and self.max is None:
            raise rules_error(msg.RULES_RANGE_EMPTY)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise rules_error(msg.RULES_RANGE_ORDER, min=self.min, max=self.max)
        return self


def _bounded(value: float | None, *, low: float, high: float, template: str) -> float | None:
    """`value` if low <= value <= high; a percent written for a fraction gets the hint "write 0.6 for 60%"."""
    if value is None or low <= value <= high:
        return value
    hint = msg.RULES_PERCENT_HINT.format(fraction=value / 100, percent=value) if 2 <= abs(value) <= 100 else ""
    raise rules_error(template, value=f"{value:g}", hint=hint)


class ProbabilityRange(Range):
    """complaint: a probability."""

    @field_validator("min", "max")
    @classmethod
    def _probability(cls, value: float | None) -> float | None:
        return _bounded(value, low=0, high=1, template=msg.RULES_PROBABILITY)


class SentimentRange(Range):
    """sentiment: -1 (most negative) .. 1 (most positive)."""

    @field_validator("min", "max")
    @classmethod
    def _sentiment(cls, value: float | None) -> float | None:
        return _bounded(value, low=-1, high=1, template=msg.RULES_SENTIMENT)


class IntRange(Range):
    min: Annotated[StrictInt, Field(ge=0)] | None = None
    max: Annotated[StrictInt, Field(ge=0)] | None = None


class Condition(_Model):
    """Several keys in one mapping must all hold; `{all: []}` matches everything (`{}` is refused as a slip)."""

    platforms: Annotated[tuple[Platform, ...], Field(min_length=1)] | None = None
    kinds: Annotated[tuple[Kind, ...], Field(min_length=1)] | None = None
    sources: NonEmptyStrs | None = None
    languages: Annotated[tuple[Language, ...], Field(min_length=1)] | None = None
    keywords_any: NonEmptyStrs | None = None
    keywords_all: NonEmptyStrs | None = None
    regex: StrictStr | None = None
    sentiment: SentimentRange | None = None
    sentiment_unknown: StrictBool | None = None
    complaint: ProbabilityRange | None = None
    categories_any: Annotated[tuple[Category, ...], Field(min_length=1)] | None = None
    followers: IntRange | None = None
    verified: StrictBool | None = None
    mentions_brand: StrictBool | None = None
    from_brand: StrictBool | None = None
    all: tuple[Condition, ...] | None = None  # all: [] is how a rule says "every mention" on purpose
    any: Annotated[tuple[Condition, ...], Field(min_length=1)] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise rules_error(msg.RULES_REGEX, pattern=value, error=str(exc)) from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if not self.model_fields_set:
            raise rules_error(msg.RULES_WHEN_EMPTY)
        return self

    @property
    def compiled(self) -> re.Pattern[str] | None:
        return _compile(self.regex) if self.regex is not None else None


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compile(pattern: str) -> re.Pattern[str]:
    # Frozen models cannot hold a cache attribute; patterns are few, keep them here.
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        compiled = _PATTERNS[pattern] = re.compile(pattern, re.IGNORECASE)
    return compiled


class AlertAction(_Model):
    channel: StrictStr  # an alias from `channels`
    severity: Severity = "normal"
    sla: PositiveDuration
    business_hours: StrictBool = False
    group_by: Literal["rule", "topic"] = "rule"
    dry_run: StrictBool = False  # the alert is posted, marked as a trial run of this rule


class AckAction(_Model):
    template: StrictStr | None = None
    # the private follow-up where the platform has one (Facebook: a private reply to the comment)
    private_template: StrictStr | None = None
    mode: Literal["auto", "approve", "off"] = "approve"
    dry_run: StrictBool | None = None  # None: acknowledgement.dry_run decides


class Rule(_Model):
    name: StrictStr
    when: Condition | None = None
    alert: AlertAction | None = None
    acknowledge: AckAction | None = None
    drop: StrictBool = False
    continue_: StrictBool = Field(default=False, alias="continue")

    @model_validator(mode="after")
    def _does_something(self) -> Rule:
        if self.drop:
            if self.continue_:
                raise rules_error(msg.RULES_DROP_CONTINUE, named=True, name=self.name)
            for action in ("alert", "acknowledge"):
                if getattr(self, action) is not None:
                    raise rules_error(msg.RULES_DROP_AND_ACTION, named=True, name=self.name, action=action)
        elif self.alert is None and self.acknowledge is None:
            raise rules_error(msg.RULES_RULE_NO_ACTION, named=True, name=self.name)
        if self.when is None:
            raise rules_error(msg.RULES_RULE_NO_WHEN, named=True, name=self.name)
        return self


# --------------------------------------------------------------------------- the whole file


class Ruleset(_Model):
    """A loaded, checked rules.yaml.  Build it with monitor.rules.load_rules / parse_rules."""

    version: Literal[1]
    brand: Brand
    sources: tuple[Source, ...] = ()
    channels: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    slack: SlackSettings = SlackSettings()
    business_hours: BusinessHours = BusinessHours()
    escalation: Escalation = Escalation()
    grouping: Grouping = Grouping()
    spike: Spike | None = None  # absent: no spike alerts
    acknowledgement: Acknowledgement = Acknowledgement()
    digest: Digest | None = None  # absent: no weekly digest
    templates: dict[StrictStr, dict[Language, StrictStr]] = Field(default_factory=dict)
    rules: tuple[Rule, ...]
    silences: tuple[Silence, ...] = ()  # monitor/rules/silences.py

    def channel(self, alias: str) -> str:
        """The Slack channel (name or id) an alias stands for; KeyError if not defined."""
        return self.channels[alias]

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def ack_dry_run(self, action: AckAction) -> bool:
        """Whether an acknowledgement only "would post": the rule's dry_run, else the global one."""
        return self.acknowledgement.dry_run if action.dry_run is None else action.dry_run


def _fmt(value: timedelta) -> str:
    """timedelta -> the shortest rules.yaml spelling ("90s", "30m", "2h")."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


format_duration = _fmt
