"""Matching mentions against the rules: evaluate (fast), explain (every reason), templates.

Semantics follow Alertmanager's routing: rules are tried in order and the
first match wins, unless that rule says `continue: true`.  A rule with
`drop: true` ends evaluation and nothing is raised.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from monitor import messages as msg
from monitor.rules.schema import TEMPLATE_VARIABLES, AckAction, AlertAction, Condition, Range, Rule, Ruleset

__all__ = ["Decision", "MentionFacts", "RuleTrace", "evaluate", "explain", "normalize_text", "render_template"]


@dataclass(frozen=True, slots=True)
class MentionFacts:
    """What the rules may look at: the mention plus its triage Score, as plain data."""

    platform: str
    kind: str
    text: str
    lang: str = "und"
    sentiment: float | None = None
    complaint: float = 0.0
    categories: tuple[str, ...] = ()
    followers: int = 0
    verified: bool = False
    mentions_brand: bool = False
    from_brand: bool = False
    source: str = ""  # the rules.yaml source name it was fetched by ("" when unknown)


@dataclass(frozen=True, slots=True)
class Decision:
    matched: tuple[Rule, ...]
    dropped: bool
    alert: AlertAction | None
    acknowledge: AckAction | None
    rule_name: str  # the first alerting rule, "" when nothing alerts


@dataclass(frozen=True, slots=True)
class RuleTrace:
    name: str
    matched: bool
    reasons: list[str]
    tried: bool = True


# --------------------------------------------------------------------------- text

# Letters NFKD does not split into base + accent, folded by hand (Danish, Croatian, Polish...).
_FOLD = str.maketrans({"ø": "o", "æ": "ae", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "œ": "oe", "þ": "th"})


@lru_cache(maxsize=4096)
def normalize_text(text: str) -> str:
    """Casefolded, without diacritics: "Nordlys Shop", "NORDLYS shop" and "nördlys shop" are equal."""
    folded = unicodedata.normalize("NFKD", text.casefold().translate(_FOLD))
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def _is_cjk(ch: str) -> bool:
    # Han, kana and hangul are written without spaces: no word boundary to look for.
    code = ord(ch)
    return (0x2E80 <= code <= 0x9FFF) or (0xAC00 <= code <= 0xD7AF) or (0xF900 <= code <= 0xFAFF) \
        or (0x20000 <= code <= 0x3FFFF)


@lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    word = normalize_text(keyword.strip())
    head = r"(?<!\w)" if word and (word[0].isalnum() or word[0] == "_") and not _is_cjk(word[0]) else ""
    tail = r"(?!\w)" if word and (word[-1].isalnum() or word[-1] == "_") and not _is_cjk(word[-1]) else ""
    body = r"\s+".join(re.escape(part) for part in word.split())
    return re.compile(head + body + tail)


def keyword_found(keyword: str, normalized_text: str) -> bool:
    return _keyword_pattern(keyword).search(normalized_text) is not None


# --------------------------------------------------------------------------- conditions

Trace = list[str] | None  # None: evaluate only, no reasons (the fast path)


def _join(values: tuple[object, ...]) -> str:
    return ", ".join(str(v) for v in values)


def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _in(what: str, value: str, choices: tuple[str, ...], trace: Trace) -> bool:
    ok = value in choices
    if trace is not None:
        template = msg.EXPLAIN_IN if ok else (msg.EXPLAIN_NOT_IN if value else msg.EXPLAIN_UNKNOWN_NOT_IN)
        trace.append(template.format(what=what, value=value, choices=_join(choices)))
    return ok


def _range(what: str, value: float, limits: Range, trace: Trace) -> bool:
    ok = True
    if limits.min is not None:
        low = value >= limits.min
        ok = ok and low
        if trace is not None:
            trace.append((msg.EXPLAIN_AT_LEAST if low else msg.EXPLAIN_BELOW).format(
                what=what, value=_num(value), limit=_num(limits.min)))
    if limits.max is not None:
        high = value <= limits.max
        ok = ok and high
        if trace is not None:
            trace.append((msg.EXPLAIN_AT_MOST if high else msg.EXPLAIN_ABOVE).format(
                what=what, value=_num(value), limit=_num(limits.max)))
    return ok


def _flag(what: str, value: bool, wanted: bool, trace: Trace) -> bool:
    ok = value == wanted
    if trace is not None:
        shown, want = str(value).lower(), str(wanted).lower()
        trace.append(msg.EXPLAIN_FLAG.format(what=what, value=shown) if ok
                     else msg.EXPLAIN_FLAG_WANTED.format(what=what, value=shown, wanted=want))
    return ok


def _check_keywords_any(cond: Condition, facts: MentionFacts, text: str, trace: Trace) -> bool:
    assert cond.keywords_any is not None
    for keyword in cond.keywords_any:
        if keyword_found(keyword, text):
            if trace is not None:
                trace.append(msg.EXPLAIN_KEYWORD_FOUND.format(keyword=keyword))
            return True
    if trace is not None:
        trace.append(msg.EXPLAIN_KEYWORDS_NONE.format(keywords=_join(cond.keywords_any)))
    return False


def _check_keywords_all(cond: Condition, facts: MentionFacts, text: str, trace: Trace) -> bool:
    assert cond.keywords_all is not None
    missing = [k for k in cond.keywords_all if not keyword_found(k, text)]
    if trace is not None:
        trace.extend(msg.EXPLAIN_KEYWORD_MISSING.format(keyword=k) for k in missing)
        if not missing:
            trace.append(msg.EXPLAIN_KEYWORDS_ALL.format(keywords=_join(cond.keywords_all)))
    return not missing


def _check_regex(cond: Condition, facts: MentionFacts, text: str, trace: Trace) -> bool:
    assert cond.compiled is not None
    found = cond.compiled.search(facts.text)
    if trace is not None:
        trace.append(msg.EXPLAIN_REGEX_MATCH.format(pattern=cond.regex, found=found.group(0)) if found
                     else msg.EXPLAIN_REGEX_NO_MATCH.format(pattern=cond.regex))
    return found is not None


def _check_sentiment(cond: Condition, facts: MentionFacts, text: str, trace: Trace) -> bool:
    assert cond.sentiment is not None
    if facts.sentiment is None:
        if trace is not None:
            trace.append(msg.EXPLAIN_SENTIMENT_UNKNOWN.format(lang=facts.lang))
        return False
    return _range("sentiment", facts.sentiment, cond.sentiment, trace)


def _check_categories(cond: Condition, facts: MentionFacts, text: str, trace: Trace) -> bool:
    assert cond.categories_any is not None
    hit = next((c for c in facts.categories if c in cond.categories_any), None)
    if trace is not None:
        trace.append(msg.EXPLAIN_CATEGORY.format(category=hit, choices=_join(cond.categories_any)) if hit
                     else msg.EXPLAIN_NO_CATEGORY.format(choices=_join(cond.categories_any),
                                                         found=_join(facts.categories) or "none"))
    return hit is not None


# Each key: (applies?, check).  Keys are checked in the order a person reads them.
_Check = Callable[[Condition, MentionFacts, str, Trace], bool]
_CHECKS: tuple[tuple[str, _Check], ...] = (
    ("platforms", lambda c, f, t, tr: _in("platform", f.platform, c.platforms or (), tr)),
    ("kinds", lambda c, f, t, tr: _in("kind", f.kind, c.kinds or (), tr)),
    ("sources", lambda c, f, t, tr: _in("source", f.source, c.sources or (), tr)),
    ("languages", lambda c, f, t, tr: _in("language", f.lang, c.languages or (), tr)),
    ("keywords_any", _check_keywords_any),
    ("keywords_all", _check_keywords_all),
    ("regex", _check_regex),
    ("sentiment", _check_sentiment),
    ("sentiment_unknown", lambda c, f, t, tr: _flag(
        "sentiment_unknown", f.sentiment is None, bool(c.sentiment_unknown), tr)),
    ("complaint", lambda c, f, t, tr: _range("complaint", f.complaint, c.complaint, tr)),  # type: ignore[arg-type]
    ("categories_any", _check_categories),
    ("followers", lambda c, f, t, tr: _range("followers", f.followers, c.followers, tr)),  # type: ignore[arg-type]
    ("verified", lambda c, f, t, tr: _flag("verified", f.verified, bool(c.verified), tr)),
    ("mentions_brand", lambda c, f, t, tr: _flag("mentions_brand", f.mentions_brand, bool(c.mentions_brand), tr)),
    ("from_brand", lambda c, f, t, tr: _flag("from_brand", f.from_brand, bool(c.from_brand), tr)),
)


def _matches(cond: Condition, facts: MentionFacts, text: str, trace: Trace) -> bool:
    """All keys must hold.  With a trace every key is checked, so explain shows every reason."""
    ok = True
    for key, check in _CHECKS:
        if getattr(cond, key) is None:
            continue
        if not check(cond, facts, text, trace):
            ok = False
            if trace is None:
                return False
    if cond.all is not None:
        for sub in cond.all:
            if not _matches(sub, facts, text, trace):
                ok = False
                if trace is None:
                    return False
    if cond.any is not None:
        hit = _any(cond.any, facts, text, trace)
        ok = ok and hit
        if not hit and trace is None:
            return False
    if cond.not_ is not None:
        inner: Trace = [] if trace is not None else None
        negated = not _matches(cond.not_, facts, text, inner)
        if trace is not None:
            trace.append(msg.EXPLAIN_NOT.format(inner="; ".join(inner or ())))
        ok = ok and negated
    return ok


def _any(options: tuple[Condition, ...], facts: MentionFacts, text: str, trace: Trace) -> bool:
    if trace is None:
        return any(_matches(sub, facts, text, None) for sub in options)
    missed: list[str] = []
    for sub in options:
        reasons: list[str] = []
        if _matches(sub, facts, text, reasons):
            trace.extend(reasons)  # the branch that matched is the explanation
            return True
        missed.extend(reasons)
    trace.append(msg.EXPLAIN_ANY_NONE.format(count=len(options), details="; ".join(missed)))
    return False


def rule_matches(rule: Rule, facts: MentionFacts, trace: Trace = None) -> bool:
    if rule.when is None:
        if trace is not None:
            trace.append(msg.EXPLAIN_NO_CONDITIONS)
        return True
    found = _matches(rule.when, facts, normalize_text(facts.text), trace)
    if trace is not None and not trace:
        trace.append(msg.EXPLAIN_NO_CONDITIONS)
    return found


# --------------------------------------------------------------------------- public API


def evaluate(ruleset: Ruleset, facts: MentionFacts) -> Decision:
    """Which rules match, in order, and the alert and acknowledgement they call for."""
    matched: list[Rule] = []
    for rule in ruleset.rules:
        if not rule_matches(rule, facts):
            continue
        matched.append(rule)
        if rule.drop:
            return Decision(matched=tuple(matched), dropped=True, alert=None, acknowledge=None, rule_name="")
        if not rule.continue_:
            break
    alerting = next((r for r in matched if r.alert is not None), None)
    acknowledging = next((r for r in matched if r.acknowledge is not None), None)
    return Decision(
        matched=tuple(matched),
        dropped=False,
        alert=alerting.alert if alerting else None,
        acknowledge=acknowledging.acknowledge if acknowledging else None,
        rule_name=alerting.name if alerting else "",
    )


def explain(ruleset: Ruleset, facts: MentionFacts) -> list[RuleTrace]:
    """Every rule in order, whether it matched and why; rules after the final match are 'not tried'."""
    traces: list[RuleTrace] = []
    stopped_by: Rule | None = None
    for rule in ruleset.rules:
        if stopped_by is not None:
            template = msg.EXPLAIN_NOT_TRIED_DROPPED if stopped_by.drop else msg.EXPLAIN_NOT_TRIED
            traces.append(RuleTrace(rule.name, False, [template.format(rule=stopped_by.name)], tried=False))
            continue
        reasons: list[str] = []
        found = rule_matches(rule, facts, reasons)
        traces.append(RuleTrace(rule.name, found, reasons))
        if found and (rule.drop or not rule.continue_):
            stopped_by = rule
    return traces


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""  # a variable the caller has no value for (e.g. {agent} before anyone claimed)


def render_template(ruleset: Ruleset, *, template: str, lang: str, values: dict[str, str]) -> tuple[str, str]:
    """(text, language used).  The mention's language if the template has it, else the brand default.

    Only the known variables are filled; a missing value becomes empty, and
    braces inside values are left alone (values are never re-formatted)."""
    texts = ruleset.templates[template]
    base = (lang or "").lower().replace("_", "-").split("-")[0]
    used = base if base in texts else ruleset.brand.default_language
    if used not in texts:  # cannot happen for a checked ruleset; be safe for hand-built ones
        used = next(iter(texts))
    filled = _Values({k: v for k, v in values.items() if k in TEMPLATE_VARIABLES})
    filled.setdefault("brand", ruleset.brand.name)
    return string.Formatter().vformat(texts[used], (), filled), used
