"""Matching mentions against the rules: evaluate (fast), explain (every reason), templates.

Semantics follow Alertmanager's routing: rules are tried in order and the
first match wins, unless that rule says `continue: true`.  A rule with
`drop: true` ends evaluation and nothing is raised.
"""

from __future__ import annotations

import re
import string
import unicodedata
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import compress

from monitor import messages as msg
from monitor.rules.schema import TEMPLATE_VARIABLES, AckAction, AlertAction, Condition, Range, Rule, Ruleset
from monitor.sanitize import neutral_greeting

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
_FOLD_LETTERS = {"ø": "o", "æ": "ae", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "œ": "oe", "þ": "th"}
_FOLD = str.maketrans(_FOLD_LETTERS)
_FOLDED_BY_HAND = re.compile("[" + "".join(_FOLD_LETTERS) + "]")  # translate() is slow on any non-ASCII text
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


@cache
def _bmp_marks() -> re.Pattern[str]:
    """Every character of the Basic Multilingual Plane with a combining class, as one character class: one
    `sub` costs a fraction of a Python test per character (a class reaching past U+FFFF is tested range by
    range, so the few characters beyond it are tested one by one, `_unless_mark`)."""
    bmp = range(0x10000)
    spans: list[list[int]] = []
    for code in compress(bmp, map(unicodedata.combining, map(chr, bmp))):
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return re.compile("[" + "".join(re.escape(chr(low)) + (f"-{re.escape(chr(high))}" if high > low else "")
                                    for low, high in spans) + "]")


def _unless_mark(found: re.Match[str]) -> str:
    char = found.group()
    return "" if unicodedata.combining(char) else char


@lru_cache(maxsize=4096)
def normalize_text(text: str) -> str:
    """Casefolded, without diacritics: "Nordlys Shop", "NORDLYS shop" and "nördlys shop" are equal."""
    folded = text.casefold()
    if folded.isascii():  # nothing to fold by hand, decompose or strip
        return folded
    if _FOLDED_BY_HAND.search(folded):
        folded = folded.translate(_FOLD)
    folded = unicodedata.normalize("NFKD", folded)
    if folded.isascii():
        return folded
    return _ASTRAL.sub(_unless_mark, _bmp_marks().sub("", folded))


def _is_cjk(ch: str) -> bool:
    # Han, kana and hangul are written without spaces: no word boundary to look for.
    code = ord(ch)
    return (0x2E80 <= code <= 0x9FFF) or (0xAC00 <= code <= 0xD7AF) or (0xF900 <= code <= 0xFAFF) \
        or (0x20000 <= code <= 0x3FFFF)


@lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    word = normalize_text(keyword.strip())
    tail = r"(?!\w)" if word and (word[-1].isalnum() or word[-1] == "_") and not _is_cjk(word[-1]) else ""
    body = r"\s+".join(re.escape(part) for part in word.split())
    if word and (word[0].isalnum() or word[0] == "_") and not _is_cjk(word[0]):
        # no word character before it, checked after its first letter (a letter, never escaped): "(?<!\w)a..."
        # made the regex engine try the look-behind at every position; "a(?<!\wa)..." lets it skip to the a's
        body = f"{word[0]}(?<!\\w{word[0]}){body[1:]}"
    return re.compile(body + tail)


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


# --------------------------------------------------------------------------- compiled (evaluate's fast path)

# A condition compiled once per Ruleset into one predicate: the same answer as `_matches` without a trace
# (every key must hold and none has a side effect, so they are tried cheapest first), without its walk
# over every key of every condition per mention (`getattr`, the lambdas, the text folded per rule).
_Predicate = Callable[[MentionFacts], bool]


def _all_of(checks: list[_Predicate]) -> _Predicate:
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda f: first(f) and second(f)
    frozen = tuple(checks)

    def all_hold(f: MentionFacts) -> bool:
        for check in frozen:
            if not check(f):
                return False
        return True
    return all_hold


def _one_of(checks: list[_Predicate]) -> _Predicate:
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def any_holds(f: MentionFacts) -> bool:
        for check in frozen:
            if check(f):
                return True
        return False
    return any_holds


def _range_check(value: Callable[[MentionFacts], float], limits: Range) -> _Predicate:
    low, high = limits.min, limits.max
    if high is None:
        return lambda f: value(f) >= low  # type: ignore[operator]
    if low is None:
        return lambda f: value(f) <= high
    return lambda f: value(f) >= low and value(f) <= high


def _sentiment_check(limits: Range) -> _Predicate:
    in_range = _range_check(lambda f: f.sentiment, limits)  # type: ignore[arg-type,return-value]
    return lambda f: f.sentiment is not None and in_range(f)


def _keywords_any_check(keywords: tuple[str, ...]) -> _Predicate:
    # one alternation: it finds a match where any keyword's own pattern would
    either = re.compile("|".join(f"(?:{_keyword_pattern(k).pattern})" for k in keywords))
    return lambda f: either.search(normalize_text(f.text)) is not None


def _keywords_all_check(keywords: tuple[str, ...]) -> _Predicate:
    patterns = tuple(_keyword_pattern(k) for k in keywords)

    def all_found(f: MentionFacts) -> bool:
        text = normalize_text(f.text)
        return all(pattern.search(text) is not None for pattern in patterns)
    return all_found


def _predicate(cond: Condition) -> _Predicate:
    """`cond` as one predicate: flags and choices first, then numbers, then patterns, then nested conditions."""
    checks: list[_Predicate] = []
    for flag in ("from_brand", "verified", "mentions_brand"):
        wanted = getattr(cond, flag)
        if wanted is not None:
            checks.append(lambda f, flag=flag, wanted=bool(wanted): getattr(f, flag) == wanted)
    if cond.sentiment_unknown is not None:
        unknown = bool(cond.sentiment_unknown)
        checks.append(lambda f: (f.sentiment is None) == unknown)
    for field_name, choices in (("platform", cond.platforms), ("kind", cond.kinds), ("source", cond.sources),
                                ("lang", cond.languages)):
        if choices is not None:
            allowed = frozenset(choices)
            checks.append(lambda f, field_name=field_name, allowed=allowed: getattr(f, field_name) in allowed)
    if cond.complaint is not None:
        checks.append(_range_check(lambda f: f.complaint, cond.complaint))
    if cond.followers is not None:
        checks.append(_range_check(lambda f: f.followers, cond.followers))
    if cond.sentiment is not None:
        checks.append(_sentiment_check(cond.sentiment))
    if cond.categories_any is not None:
        categories = frozenset(cond.categories_any)
        checks.append(lambda f: not categories.isdisjoint(f.categories))
    if cond.regex is not None:
        search = cond.compiled.search  # type: ignore[union-attr]
        checks.append(lambda f: search(f.text) is not None)
    if cond.keywords_any is not None:
        checks.append(_keywords_any_check(cond.keywords_any))
    if cond.keywords_all is not None:
        checks.append(_keywords_all_check(cond.keywords_all))
    checks.extend(_predicate(sub) for sub in cond.all or ())
    if cond.any is not None:
        checks.append(_one_of([_predicate(sub) for sub in cond.any]))
    if cond.not_ is not None:
        inner = _predicate(cond.not_)
        checks.append(lambda f: not inner(f))
    if not checks:  # `all: []`: every mention
        return lambda f: True
    return _all_of(checks)


@dataclass(frozen=True, slots=True)
class _CompiledRules:
    rules: tuple[tuple[Rule, _Predicate | None], ...]  # None: no conditions, always matches
    decisions: dict[tuple[int, ...], Decision]  # by the indexes of the matched rules (few distinct ones)


_COMPILED: dict[int, tuple[weakref.ref[Ruleset], _CompiledRules]] = {}


def _compiled(ruleset: Ruleset) -> _CompiledRules:
    """The ruleset's rules compiled, once per Ruleset object (it is frozen; a dict field keeps it unhashable)."""
    key = id(ruleset)
    entry = _COMPILED.get(key)
    if entry is not None and entry[0]() is ruleset:
        return entry[1]
    compiled = _CompiledRules(
        rules=tuple((rule, _predicate(rule.when) if rule.when is not None else None) for rule in ruleset.rules),
        decisions={})
    _COMPILED[key] = (weakref.ref(ruleset, lambda _gone: _COMPILED.pop(key, None)), compiled)
    return compiled


def _decision(rules: Sequence[Rule], dropped: bool) -> Decision:
    if dropped:
        return Decision(matched=tuple(rules), dropped=True, alert=None, acknowledge=None, rule_name="")
    alerting = next((r for r in rules if r.alert is not None), None)
    acknowledging = next((r for r in rules if r.acknowledge is not None), None)
    return Decision(
        matched=tuple(rules),
        dropped=False,
        alert=alerting.alert if alerting else None,
        acknowledge=acknowledging.acknowledge if acknowledging else None,
        rule_name=alerting.name if alerting else "",
    )


# --------------------------------------------------------------------------- public API


def evaluate(ruleset: Ruleset, facts: MentionFacts) -> Decision:
    """Which rules match, in order, and the alert and acknowledgement they call for."""
    compiled = _compiled(ruleset)
    matched: list[int] = []
    dropped = False
    for index, (rule, holds) in enumerate(compiled.rules):
        if holds is not None and not holds(facts):
            continue
        matched.append(index)
        if rule.drop:
            dropped = True
            break
        if not rule.continue_:
            break
    key = tuple(matched)
    decision = compiled.decisions.get(key)
    if decision is None:  # a Decision is frozen: mentions with the same matches share one
        decision = compiled.decisions[key] = _decision([compiled.rules[i][0] for i in key], dropped)
    return decision


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
    braces inside values are left alone (values are never re-formatted).  An
    empty {author} (a name that does not read as one) gives the neutral greeting."""
    texts = ruleset.templates[template]
    base = (lang or "").lower().replace("_", "-").split("-")[0]
    used = base if base in texts else ruleset.brand.default_language
    if used not in texts:  # cannot happen for a checked ruleset; be safe for hand-built ones
        used = next(iter(texts))
    filled = _Values({k: v for k, v in values.items() if k in TEMPLATE_VARIABLES})
    filled.setdefault("brand", ruleset.brand.name)
    text = texts[used] if filled.get("author") else neutral_greeting(texts[used])
    parts = _template_parts(text)
    if parts is None:
        return string.Formatter().vformat(text, (), filled), used
    return "".join([literal + format(filled[name], "") if name else literal for literal, name in parts]), used


@lru_cache(maxsize=256)
def _template_parts(text: str) -> tuple[tuple[str, str], ...] | None:
    """(text before, variable or "") pairs of a template, parsed once; None when a field has a conversion, a
    format spec or a name that is not a variable (string.Formatter renders those, or raises as it would)."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return None
    if any(name is not None and (name not in TEMPLATE_VARIABLES or spec or conversion)
           for _, name, spec, conversion in parsed):
        return None
    return tuple((literal, name or "") for literal, name, _, _ in parsed)
