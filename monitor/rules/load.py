"""rules.yaml: load it strictly, report every mistake at once with FILE:LINE:COL, then match.

Loading runs in three steps.  ruamel.yaml (round-trip) parses the text and
keeps the line and column of every key and value; pydantic checks each section
against monitor/rules/schema.py; a cross-reference pass then relates sections
to each other (templates, channel aliases, names).  All errors from steps two
and three are reported together, sorted by line.
"""

from __future__ import annotations

import difflib
import re
import string
import unicodedata
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from monitor import messages as msg
from monitor.rules.match import (
    Decision,
    MentionFacts,
    RuleTrace,
    evaluate,
    explain,
    normalize_text,
    render_template,
)
from monitor.rules.schema import (
    TEMPLATE_VARIABLES,
    AckAction,
    AlertAction,
    Condition,
    Rule,
    Ruleset,
    Source,
    format_duration,
    parse_duration,
)

__all__ = [
    "AckAction", "AlertAction", "Condition", "Decision", "MentionFacts", "Rule", "RuleTrace", "Ruleset",
    "RulesError", "Source", "evaluate", "explain", "format_duration", "load_rules", "normalize_text",
    "parse_duration", "parse_rules", "render_template", "x_weighted_length",
]

Loc = tuple[str | int, ...]


class RulesError(Exception):
    """rules.yaml is not usable.  `.errors` holds every problem as "FILE:LINE:COL: message"."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def load_rules(path: str | Path) -> Ruleset:
    """Read and check a rules file; raises RulesError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RulesError([f"{path}:1:1: {msg.RULES_CANNOT_READ.format(reason=reason)}"]) from None
    return parse_rules(text, filename=str(path))


def parse_rules(text: str, *, filename: str = "rules.yaml") -> Ruleset:
    """Check rules given as text; `filename` only labels the error lines."""
    problems: list[tuple[int, int, str]] = []
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        raise RulesError([_syntax_error(exc, filename)]) from None
    except (YAMLError, ValueError, TypeError) as exc:  # no position known (e.g. a bad "!!int" tag)
        raise RulesError([f"{filename}:1:1: {msg.RULES_YAML_SYNTAX.format(problem=exc)}"]) from None
    if root is None:
        raise RulesError([f"{filename}:1:1: {msg.RULES_EMPTY}"])
    if not isinstance(root, CommentedMap):
        raise RulesError([f"{filename}:1:1: {msg.RULES_NOT_MAPPING.format(got=_describe(root))}"])

    ruleset: Ruleset | None = None
    try:
        try:
            ruleset = Ruleset.model_validate(_plain(root))
        except ValidationError as exc:
            problems.extend(_schema_problem(root, err) for err in _worth_reporting(exc.errors()))
        problems.extend(cross_check(root))
    except RecursionError:
        raise RulesError([f"{filename}:1:1: {msg.RULES_TOO_DEEP}"]) from None
    if problems:
        unique = sorted(dict.fromkeys(problems), key=lambda p: (p[0], p[1]))  # ties keep schema order
        raise RulesError([f"{filename}:{line + 1}:{col + 1}: {text_}" for line, col, text_ in unique])
    assert ruleset is not None
    return ruleset


# --------------------------------------------------------------------------- YAML helpers


def _syntax_error(exc: MarkedYAMLError, filename: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "cannot parse"
    dup = re.match(r'found duplicate key "(.*?)"', problem)
    text = msg.RULES_YAML_DUPLICATE_KEY.format(key=dup.group(1)) if dup else msg.RULES_YAML_SYNTAX.format(
        problem=problem
    )
    return f"{filename}:{line}:{col}: {text}"


def _plain(node: Any) -> Any:
    """ruamel's round-trip types -> plain Python, so pydantic sees ordinary values."""
    if isinstance(node, dict):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _describe(value: Any) -> str:
    """How a value reads in a message: 'text' quoted, numbers as they are, containers by kind."""
    if value is None:
        return "nothing (the value is empty)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, datetime | date):
        return f"a date ({value.isoformat()})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _path(loc: Loc) -> str:
    out = ""
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out


def _walk(root: CommentedMap, loc: Loc) -> tuple[Loc, tuple[int, int], tuple[int, int], Any]:
    """Follow loc through the YAML tree as far as it exists.

    Returns (the part of loc that exists, position of the last key or item,
    position of its value, the node there)."""
    node: Any = root
    found: list[str | int] = []
    key_pos = val_pos = (root.lc.line, root.lc.col)
    for item in loc:
        if isinstance(node, CommentedMap) and item in node:
            key_pos, val_pos = _pos(node.lc.key(item)), _pos(node.lc.value(item))
        elif isinstance(node, CommentedSeq) and isinstance(item, int) and 0 <= item < len(node):
            key_pos = val_pos = _pos(node.lc.item(item))
        else:
            break
        found.append(item)
        node = node[item]
    return tuple(found), key_pos, val_pos, node


def _pos(pair: Any) -> tuple[int, int]:
    return (int(pair[0]), int(pair[1])) if pair else (0, 0)


# --------------------------------------------------------------------------- schema errors

def _worth_reporting(errors: list[Any]) -> list[Any]:
    """Drop errors that only echo another one.

    A list whose items were wrong also reports "too short"; a misspelt key
    ('chanel') also reports the right key ('channel') as missing."""
    locs = [tuple(e["loc"]) for e in errors]
    misspelt = {
        (tuple(e["loc"][:-1]), hint)
        for e in errors if e["type"] == "extra_forbidden"
        for hint in difflib.get_close_matches(str(e["loc"][-1]), _allowed_keys(tuple(e["loc"][:-1])), 1, 0.6)
    }
    kept = []
    for err, loc in zip(errors, locs, strict=True):
        if err["type"] == "too_short" and any(other[: len(loc)] == loc and other != loc for other in locs):
            continue
        if err["type"] == "missing" and (loc[:-1], loc[-1]) in misspelt:
            continue
        kept.append(err)
    return kept


_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}
_COMPARISONS = {
    "greater_than": ("greater than", "gt"),
    "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"),
    "less_than_equal": ("at most", "le"),
}


def _schema_problem(root: CommentedMap, err: Any) -> tuple[int, int, str]:
    kind: str = err["type"]
    loc: Loc = tuple(err["loc"])
    found, key_pos, val_pos, _node = _walk(root, loc)
    where = _path(found) or msg.RULES_TOP_LEVEL
    if kind == "missing":
        return (*key_pos, msg.RULES_MISSING_KEY.format(key=loc[-1], where=where))
    if kind == "extra_forbidden":
        key = str(loc[-1])
        text = msg.RULES_UNKNOWN_KEY.format(key=key, where=_path(found[:-1]) or msg.RULES_TOP_LEVEL)
        return (*key_pos, text + _did_you_mean(key, _allowed_keys(found[:-1])))
    path = _path(found)
    value = err.get("input")
    if kind == "literal_error" and found == ("version",):
        return (*val_pos, msg.RULES_VERSION.format(value=_describe(value)))
    if kind == "literal_error":
        choices = err["ctx"]["expected"]
        text = msg.RULES_NOT_ONE_OF.format(path=path, value=_describe(value), choices=choices)
        return (*val_pos, text + _did_you_mean(str(value), re.findall(r"'([^']*)'", choices)))
    if kind in _EXPECTED:
        return (*val_pos, msg.RULES_WRONG_TYPE.format(path=path, expected=_EXPECTED[kind], got=_describe(value)))
    if kind in _COMPARISONS:
        words, key = _COMPARISONS[kind]
        return (*val_pos, msg.RULES_OUT_OF_RANGE.format(path=path, op=words, limit=err["ctx"][key], value=value))
    if kind == "too_short":
        return (*val_pos, msg.RULES_EMPTY_LIST.format(path=path))
    if kind == "rules_named":
        return (*val_pos, err["msg"])
    problem = err["msg"] if kind == "rules" else err["msg"].removeprefix("Value error, ")
    return (*val_pos, msg.RULES_VALUE.format(path=path, problem=problem) if path else problem)


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return msg.RULES_DID_YOU_MEAN.format(suggestion=close[0]) if close else ""


def _strip(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            options = [a for a in get_args(tp) if a is not NoneType]
            if len(options) != 1:
                return tp
            tp = options[0]
        else:
            return tp


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the schema allows in the mapping at loc (for "did you mean")."""
    tp: Any = Ruleset
    for item in loc:
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {(f.alias or name): f.annotation for name, f in tp.model_fields.items()}
            if item not in fields:
                return []
            tp = fields[item]
        elif get_origin(tp) in (tuple, list):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return []
    tp = _strip(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [(f.alias or name) for name, f in tp.model_fields.items()]
    return []


# --------------------------------------------------------------------------- cross-reference pass

# Widest value each variable may take when the length limit is checked.
_VARIABLE_WIDTH = {"x": {"author": 16, "eta": 20, "agent": 30, "dm_link": 23},
                   "facebook": {"author": 50, "eta": 20, "agent": 30, "dm_link": 60}}
_LIMITS = {"x": 280, "facebook": 8000}
_URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
# X counts these code point ranges as 1 and everything else (CJK, emoji...) as 2.
_X_LIGHT = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))


def x_weighted_length(text: str) -> int:
    """Length as X counts it: URLs count 23, CJK and emoji count 2, Latin 1."""
    text = unicodedata.normalize("NFC", text)
    urls = _URL_RE.findall(text)
    rest = _URL_RE.sub("", text)
    weight = sum(1 if any(lo <= ord(ch) <= hi for lo, hi in _X_LIGHT) else 2 for ch in rest)
    return weight + 23 * len(urls)


def _get(node: Any, key: str) -> Any:
    return node.get(key) if isinstance(node, CommentedMap) else None


def _items(node: Any) -> Iterator[tuple[int, Any]]:
    return enumerate(node) if isinstance(node, CommentedSeq) else iter(())


def _key_pos(node: CommentedMap, key: str) -> tuple[int, int]:
    return _pos(node.lc.key(key))


def _val_pos(node: CommentedMap, key: str) -> tuple[int, int]:
    return _pos(node.lc.value(key))


def _names_hint(name: str, defined: list[str]) -> str:
    hint = _did_you_mean(name, defined)
    if hint:
        return hint
    return msg.RULES_DEFINED.format(names=", ".join(defined)) if defined else msg.RULES_NONE_DEFINED


def cross_check(root: CommentedMap) -> list[tuple[int, int, str]]:
    """Relations between sections; tolerant of sections the schema already rejected."""
    problems: list[tuple[int, int, str]] = []
    channels = _get(root, "channels")
    aliases = [str(k) for k in channels] if isinstance(channels, CommentedMap) else []
    templates = _get(root, "templates")
    template_names = [str(k) for k in templates] if isinstance(templates, CommentedMap) else []
    sources = _get(root, "sources")
    source_names = _unique_names(sources, "source", problems)
    rules = _get(root, "rules")
    _unique_names(rules, "rule", problems)

    def check_channel(node: Any, key: str, user: str, default: str | None = None) -> None:
        if not isinstance(node, CommentedMap):
            return
        alias = node.get(key, default)
        if not isinstance(alias, str) or alias in aliases:
            return
        pos = _val_pos(node, key) if key in node else (node.lc.line, node.lc.col)
        problems.append((*pos, msg.RULES_UNDEFINED_CHANNEL.format(alias=alias, user=user)
                         + _names_hint(alias, aliases)))

    template_platforms: dict[str, set[str]] = {}
    source_platforms = {s.get("platform") for _, s in _items(sources) if isinstance(s, CommentedMap)}
    source_platforms = {p for p in source_platforms if p in _LIMITS} or set(_LIMITS)
    for index, rule in _items(rules):
        name = _get(rule, "name")
        label = f"rule '{name}'" if isinstance(name, str) else f"rules[{index}]"
        check_channel(_get(rule, "alert"), "channel", label)
        ack = _get(rule, "acknowledge")
        for key in ("template", "private_template"):
            template = _get(ack, key)
            if not isinstance(template, str):
                continue
            if template not in template_names:
                problems.append((*_val_pos(ack, key), msg.RULES_UNDEFINED_TEMPLATE.format(
                    name=template, rule=name if isinstance(name, str) else f"rules[{index}]",
                ) + _names_hint(template, template_names)))
            platforms = _get(_get(rule, "when"), "platforms")
            wanted = {p for _, p in _items(platforms) if p in _LIMITS} if platforms else source_platforms
            template_platforms.setdefault(template, set()).update(wanted)
        _check_condition_sources(_get(rule, "when"), source_names, name, problems)

    escalation = _get(root, "escalation")
    previous: Any = None
    for index, step in _items(_get(escalation, "steps")):
        check_channel(step, "channel", f"escalation.steps[{index}]")
        after = _duration_or_none(_get(step, "after"))
        if after is not None and previous is not None and after < previous:
            problems.append((*_val_pos(step, "after"), msg.RULES_ESCALATION_ORDER.format(
                index=index, after=format_duration(after), previous=format_duration(previous))))
        previous = after if after is not None else previous
    check_channel(_get(root, "spike"), "channel", "spike", default="alerts")
    check_channel(_get(root, "digest"), "channel", "digest", default="digest")

    if isinstance(templates, CommentedMap):
        brand = _get(root, "brand")
        allow_urls = _get(_get(root, "acknowledgement"), "allow_urls") is True
        for name, texts in templates.items():
            if isinstance(texts, CommentedMap):
                platforms = template_platforms.get(str(name), source_platforms)
                _check_template(str(name), texts, templates, brand, platforms, allow_urls, problems)
    return problems


def _duration_or_none(value: Any) -> Any:
    try:
        return parse_duration(value)
    except ValueError:
        return None


def _unique_names(seq: Any, what: str, problems: list[tuple[int, int, str]]) -> list[str]:
    first_line: dict[str, int] = {}
    for _, item in _items(seq):
        name = _get(item, "name")
        if not isinstance(name, str):
            continue
        line, col = _val_pos(item, "name")
        if name in first_line:
            text = (msg.RULES_DUPLICATE_RULE if what == "rule" else msg.RULES_DUPLICATE_SOURCE).format(
                name=name, line=first_line[name] + 1
            )
            problems.append((line, col, text))
        else:
            first_line[name] = line
    return list(first_line)


def _check_condition_sources(
    cond: Any, source_names: list[str], rule: Any, problems: list[tuple[int, int, str]]
) -> None:
    if not isinstance(cond, CommentedMap):
        return
    used = cond.get("sources")
    if isinstance(used, CommentedSeq):
        for index, name in enumerate(used):
            if isinstance(name, str) and name not in source_names:
                problems.append((*_pos(used.lc.item(index)), msg.RULES_UNDEFINED_SOURCE.format(
                    name=name, rule=rule) + _names_hint(name, source_names)))
    for key in ("all", "any"):
        for _, sub in _items(cond.get(key)):
            _check_condition_sources(sub, source_names, rule, problems)
    _check_condition_sources(cond.get("not"), source_names, rule, problems)


def _check_template(
    name: str, texts: CommentedMap, templates: CommentedMap, brand: Any, platforms: set[str],
    allow_urls: bool, problems: list[tuple[int, int, str]],
) -> None:
    languages = [str(x) for _, x in _items(_get(brand, "languages"))] or ["en"]
    default = _get(brand, "default_language") or "en"
    brand_name = _get(brand, "name")
    brand_name = brand_name if isinstance(brand_name, str) else ""
    if isinstance(default, str) and default not in texts:
        problems.append((*_key_pos(templates, name), msg.RULES_TEMPLATE_NO_DEFAULT.format(name=name, lang=default)))
    known = ", ".join(f"{{{v}}}" for v in TEMPLATE_VARIABLES)
    for lang, text in texts.items():
        if not isinstance(text, str):
            continue
        at = _val_pos(texts, lang)
        if isinstance(lang, str) and languages and lang not in languages:
            problems.append((*_key_pos(texts, lang), msg.RULES_TEMPLATE_LANGUAGE.format(
                name=name, lang=lang, languages=", ".join(languages))))
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError:
            problems.append((*at, msg.RULES_TEMPLATE_BRACES.format(name=name, lang=lang)))
            continue
        bad = [f for f in fields if re.match(r"\w*", f).group(0) not in TEMPLATE_VARIABLES]  # type: ignore[union-attr]
        for field in dict.fromkeys(bad):
            problems.append((*at, msg.RULES_UNKNOWN_VARIABLE.format(var=field, name=name, lang=lang, known=known)))
        if bad:
            continue
        literal = "".join(lit for lit, _, _, _ in string.Formatter().parse(text))
        if not allow_urls and _URL_RE.search(literal):
            problems.append((*at, msg.RULES_TEMPLATE_URL.format(name=name, lang=lang)))
        for platform in sorted(platforms):
            widths = {**_VARIABLE_WIDTH[platform], "brand": len(brand_name)}
            if platform == "x":
                length = x_weighted_length(literal) + sum(
                    x_weighted_length(brand_name) if f == "brand" else widths[f] for f in fields
                )
            else:
                length = len(literal) + sum(widths[f] for f in fields)
            if length > _LIMITS[platform]:
                problems.append((*at, msg.RULES_TEMPLATE_TOO_LONG.format(
                    name=name, lang=lang, length=length, platform=_PLATFORM_NAMES[platform],
                    limit=_LIMITS[platform])))


_PLATFORM_NAMES = {"x": "X", "facebook": "Facebook"}
