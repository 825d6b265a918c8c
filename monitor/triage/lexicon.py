"""Text clean-up and the lexicon data files triage reads (loaded lazily, once).

Data lives in monitor/data/lexicons/<lang>/: sentiment.tsv (word<TAB>value on the
AFINN -5..5 scale), negators.txt, intensifiers.txt, contrast.txt ("but" words),
complaint_cues.tsv (category<TAB>weight<TAB>regex), zh/traditional.tsv (traditional ->
simplified characters), and emoji.tsv shared by all languages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

LEXICON_DIR = Path(__file__).parent.parent / "data" / "lexicons"
SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "da", "hr", "ro", "id", "zh")

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE = re.compile(r"(?<!\w)@\w+")
_RT = re.compile(r"^\s*RT\b:?", re.IGNORECASE)
# Sentence = text up to and including its run of terminators, so VADER still sees "!!!".
_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*|[.!?。！？]+")
# Letters that NFKD does not decompose but people drop when typing without diacritics.
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_FOLD_EXTRA = str.maketrans(
    {"đ": "d", "ø": "o", "æ": "ae", "ł": "l", "ß": "ss", "ı": "i", "’": "'", "‘": "'"}
)
# str.translate looks every character up in the table (~3.5 µs on a post); most posts have none of them.
_FOLD_EXTRA_FOUND = re.compile("[" + "".join(map(chr, _FOLD_EXTRA)) + "]")


def clean(text: str) -> str:
    """Drop URLs, @handles and the RT marker; keep hashtag words (without '#')."""
    # Each pattern needs a character the text may lack ('@'; '.' or ':' for a URL): a missing one
    # spares a scan of the whole post. The RT marker can only open it.
    marker = _RT.match(text)
    if marker is not None:
        text = " " + text[marker.end():]
    if "." in text or ":" in text:
        text = _URL.sub(" ", text)
    if "@" in text:
        text = _HANDLE.sub(" ", text)
    return text.replace("#", " ")


def fold(text: str) -> str:
    """Lower-case, strip diacritics, fold full-width forms: 'Nije stiglo' == 'nije stiglo' == 'nıje stıglo'."""
    text = text.lower()
    if text.isascii():
        return text
    if _FOLD_EXTRA_FOUND.search(text) is not None:
        text = text.translate(_FOLD_EXTRA)
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


_DANISH_LETTERS = re.compile("([æøå])")


def fold_keeping_danish(text: str) -> str:
    """`fold`, but æ/ø/å stay letters of their own: høre is not hore, hån is not han."""
    lower = text.lower()
    if lower.isascii():
        return lower
    return "".join(part if len(part) == 1 and part in "æøå" else fold(part) for part in _DANISH_LETTERS.split(lower))


def split_sentences(text: str) -> list[str]:
    return [s for s in map(str.strip, _SENTENCE.findall(text)) if s]  # the pattern has no groups: whole matches


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.rstrip("\n")
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
    return out


def _variants(word: str, *, lang: str = "") -> set[str]:
    """The spellings a lexicon entry should match: as written, and diacritic-free.

    Danish keeps æ/ø/å (folding them makes words collide: høre/hore, hån/han, stød/stod);
    the ASCII spellings ae/oe/aa are matched too, as Danes type them without the letters."""
    lower = word.lower()
    if lang == "da":
        out = {lower, fold_keeping_danish(lower)}
    else:
        out = {lower, fold(lower)}
    if any(ch in lower for ch in "æøå"):
        out.add(fold(lower.replace("æ", "ae").replace("ø", "oe").replace("å", "aa")))
    return out


@dataclass(frozen=True, slots=True)
class Lexicon:
    """One language's sentiment words (single words and phrases up to three words)."""

    words: dict[str, float]
    phrases: dict[tuple[str, ...], float]
    negators: frozenset[str]
    intensifiers: frozenset[str]
    contrasts: frozenset[str]  # "but" words: what comes before one counts half, what follows 1.5 times
    max_phrase: int
    phrase_starts: frozenset[str]  # first words of the phrases: other words skip the phrase look-up


@dataclass(frozen=True, slots=True)
class Cue:
    category: str  # "" when the cue marks a grievance without a category
    weight: float
    pattern: re.Pattern[str]
    source: str
    # Literal starts the pattern can only match at; if none occurs in the text the regex
    # is not run. Most cues start with a word list, so this skips ~90% of searches.
    prefixes: frozenset[str] | None
    word_start: bool  # the pattern begins with \b: its prefixes can only start a word


# Every character `\d` matches (Unicode decimal digits): none lies above plane 1
# (tests/test_triage_speed.py checks this against the running Python's Unicode tables).
_DIGIT_PLANES_END = 0x20000


@cache
def _decimal_digits() -> frozenset[str]:
    return frozenset(ch for ch in map(chr, range(_DIGIT_PLANES_END)) if ch.isdecimal())


def _first_characters(op: Any, arg: Any) -> set[str] | None:
    """The word characters a character class can match, if it is a short list of them."""
    from re import _constants as c  # type: ignore[attr-defined]

    if op == c.LITERAL:
        return {chr(arg)} if chr(arg).isalnum() else None
    if op != c.IN:
        return None
    out: set[str] = set()
    for kind, value in arg:
        if kind == c.LITERAL and chr(value).isalnum():
            out.add(chr(value))
        elif kind == c.RANGE and value[1] - value[0] < 64 and all(chr(v).isalnum() for v in range(value[0], value[1] + 1)):
            out.update(chr(v) for v in range(value[0], value[1] + 1))
        elif kind == c.CATEGORY and value == c.CATEGORY_DIGIT:  # \d, as in "\b(\d+|two|three) days"
            out |= _decimal_digits()
        else:  # a negated class, \w, \s ...: too many to list
            return None
    return out


# A prefix ending in this marks a whole word: the word-start prefix "no " matches the word "no", not "not".
WHOLE_WORD = " "
_WORD_CHAR = re.compile(r"\w")


def _ends_word(items: Any) -> bool:
    """True if what `items` match first cannot be a word character: a literal non-word character,
    or \b (after a word character, a boundary means the word ends there)."""
    from re import _constants as c  # type: ignore[attr-defined]

    if not items:
        return False
    op, arg = items[0]
    if op == c.LITERAL:
        return _WORD_CHAR.match(chr(arg)) is None
    return op == c.AT and arg == c.AT_BOUNDARY


def _leading_literals(items: Any, after: Any = ()) -> set[str] | None:
    """Strings one of which every match of the parsed regex `items` starts with, or None.

    `after` is what the pattern matches after `items`.  A word-character string the match then
    leaves with a non-word character (or \b) ends in WHOLE_WORD: "\\bno (reply|answer)" starts
    with the word "no", "\\bno" alone with any word that starts with "no"."""
    from re import _constants as c  # type: ignore[attr-defined]

    items = list(items)
    while items and items[0][0] == c.AT:  # \b, ^: zero-width
        items = items[1:]
    if not items:
        return None
    op, arg = items[0]
    if op == c.LITERAL:
        run = ""
        for item_op, item_arg in items:
            # Only word characters: the prefix is compared with word starts.  All of them: the longer
            # the prefix, the fewer words start with it.
            if item_op != c.LITERAL or not chr(item_arg).isalnum():
                break
            run += chr(item_arg)
        if not run:
            return None
        rest = items[len(run):]
        return {run + WHOLE_WORD if _ends_word(rest or list(after)) else run}
    if op == c.IN:
        return _first_characters(op, arg)
    if op == c.SUBPATTERN:
        return _leading_literals(arg[-1], [*items[1:], *after])
    if op == c.BRANCH:
        out: set[str] = set()
        for alternative in arg[1]:
            found = _leading_literals(alternative, [*items[1:], *after])
            if not found:
                return None
            out |= found
        return out
    if op in (c.MAX_REPEAT, c.MIN_REPEAT):
        # What follows one repetition may be another: only an optional item ("(is )?") is followed by
        # the rest of the pattern for sure.
        found = _leading_literals(arg[2], [*items[1:], *after] if arg[1] == 1 else ())
        if arg[0] >= 1 or not found:
            return found
        # An optional start, "\b(is )?(anyone|anybody)": a match starts with it or with what follows.
        rest = _leading_literals(items[1:], after)
        return found | rest if rest else None
    return None


# A cue matched anywhere (not at a word start) looks for each of its prefixes in the text: past
# this many, one regex search is cheaper (a \d start alone has 660 characters).
_MAX_SUBSTRING_PREFIXES = 32


def _prefixes(pattern: str, *, word_start: bool) -> frozenset[str] | None:
    from re import _parser  # type: ignore[attr-defined]

    try:
        found = _leading_literals(_parser.parse(pattern))
    except Exception:  # an internal API we only use to go faster: never let it fail a cue
        return None
    if found and not word_start:  # no word starts to compare with: plain substrings
        found = {prefix.removesuffix(WHOLE_WORD) for prefix in found}
    if not found or (not word_start and len(found) > _MAX_SUBSTRING_PREFIXES):
        return None
    return frozenset(found)


def _read_sentiment(path: Path) -> dict[str, float]:
    entries: dict[str, float] = {}
    for line in _lines(path):
        word, _, value = line.partition("\t")
        entries[word.strip()] = float(value)
    return entries


@cache
def lexicon(lang: str) -> Lexicon:
    base = LEXICON_DIR / lang
    entries: dict[str, float] = {}
    if lang == "da":
        # afinn ships the Danish AFINN list; our file adds domain words and overrides.
        from afinn import Afinn

        entries.update(Afinn(language="da")._dict)
    entries.update(_read_sentiment(base / "sentiment.tsv"))
    words: dict[str, float] = {}
    phrases: dict[tuple[str, ...], float] = {}
    for entry, value in entries.items():
        for variant in _variants(entry, lang=lang):
            parts = tuple(variant.split())
            if len(parts) == 1:
                words[parts[0]] = value
            elif parts:
                phrases[parts] = value

    def word_set(name: str) -> frozenset[str]:
        return frozenset(v for w in _lines(base / name) for v in _variants(w.strip(), lang=lang))

    return Lexicon(
        words=words,
        phrases=phrases,
        negators=word_set("negators.txt"),
        intensifiers=word_set("intensifiers.txt"),
        contrasts=word_set("contrast.txt"),
        max_phrase=max((len(p) for p in phrases), default=1),
        phrase_starts=frozenset(p[0] for p in phrases),
    )


@cache
def zh_traditional() -> dict[int, str]:
    """A str.translate table folding the traditional characters of zh/traditional.tsv to simplified."""
    table = {}
    for line in _lines(LEXICON_DIR / "zh" / "traditional.tsv"):
        traditional, _, simplified = line.partition("\t")
        table[ord(traditional)] = simplified
    return table


@cache
def zh_traditional_found() -> Callable[[str], re.Match[str] | None]:
    """`search` for a character `zh_traditional` folds: most texts have none, and one character-class
    search costs less than `str.translate`'s look-up of every character."""
    return re.compile("[" + "".join(re.escape(chr(code)) for code in sorted(zh_traditional())) + "]").search


@cache
def cues(lang: str) -> tuple[Cue, ...]:
    out = []
    for line in _lines(LEXICON_DIR / lang / "complaint_cues.tsv"):
        category, weight, pattern = line.split("\t", 2)
        category = "" if category == "-" else category
        out.append(
            Cue(
                category=category,
                weight=float(weight),
                pattern=re.compile(pattern),
                source=pattern,
                prefixes=_prefixes(pattern, word_start=pattern.startswith("\\b")),
                word_start=pattern.startswith("\\b"),
            )
        )
    return tuple(out)


@cache
def emoji_valence() -> dict[str, float]:
    table = {}
    for line in _lines(LEXICON_DIR / "emoji.tsv"):
        symbol, _, value = line.partition("\t")
        table[symbol] = float(value)
    return table


@cache
def emoji_pattern() -> re.Pattern[str]:
    # Longest first, so a ZWJ sequence (🤦‍♀️) wins over its first code point.
    symbols = sorted(emoji_valence(), key=len, reverse=True)
    return re.compile("|".join(re.escape(s) for s in symbols))


@cache
def _emoji_starts() -> re.Pattern[str]:
    """A character class holding every first code point of the table's symbols, and others: the
    blocks of 256 they lie in.  A class of the 57 code points themselves (most above U+FFFF, where the regex
    engine has no bitmap) compares each character with each of them (~4 µs a post)."""
    ranges: list[list[int]] = []  # [first block, last block], adjacent blocks merged
    for block in sorted({ord(symbol[0]) >> 8 for symbol in emoji_valence()}):
        if ranges and ranges[-1][1] + 1 == block:
            ranges[-1][1] = block
        else:
            ranges.append([block, block])
    return re.compile("[" + "".join(f"{re.escape(chr(first << 8))}-{re.escape(chr((last << 8) | 0xFF))}"
                                    for first, last in ranges) + "]")


def split_emoji(text: str) -> tuple[list[str], str]:
    """(`emoji_pattern().findall(text)`, `emoji_pattern().sub(" ", text)`) in one quick pass.

    The alternation of all symbols is tried at every character (~10 µs a post, twice: find, then
    replace); every match starts with one of the table's first code points, so the alternation is
    tried only where one may occur, and a post without any (most) is done after one character class."""
    if text.isascii():
        return [], text
    starts = _emoji_starts().search
    found = starts(text)
    if found is None:
        return [], text
    match_at = emoji_pattern().match
    symbols: list[str] = []
    pieces: list[str] = []
    kept = 0  # text[kept:] is not yet copied
    while found is not None:
        at = found.start()
        symbol = match_at(text, at)
        if symbol is None:
            found = starts(text, at + 1)
            continue
        symbols.append(symbol.group())
        pieces.append(text[kept:at])
        kept = symbol.end()
        found = starts(text, kept)
    if not symbols:
        return [], text
    pieces.append(text[kept:])
    return symbols, " ".join(pieces)


# A post asks something when it has a question mark or opens with a question word of its
# language (people often leave the mark out).  Matched on folded text (see `fold`).
_QUESTION_OPENERS: dict[str, str] = {
    "en": r"(do|does|did|can|could|will|would|is|are|was|have|has|how|what|when|where|which|who|why|any(one)?)",
    "da": r"(hvor|hvad|hvornar|hvordan|hvorfor|hvem|hvilke[nt]?|kan|har|er|findes|sender|leverer|kommer)",
    "hr": r"(gdje|sto|kada|kad|kako|zasto|tko|koliko|moze|mozete|imate|je li|da li)",
    "ro": r"(unde|ce|cand|cum|de ce|cine|cat|cate|aveti|puteti|se poate|exista)",
    "id": r"(apa|apakah|kapan|dimana|di mana|bagaimana|gimana|berapa|kenapa|bisa|ada)",
}
_QUESTION_RE = {lang: re.compile(rf"^\W*{words}\b") for lang, words in _QUESTION_OPENERS.items()}
_ZH_QUESTION = re.compile("[吗呢]|什么|怎么|哪|多少|能不能|可不可以|是否|请问")


def is_question(cleaned: str, *, lang: str, folded: str | None = None) -> bool:
    """True for a post that asks something ("do you ship to Ireland?"), complaint or not.

    `folded` is `fold(cleaned)` when the caller has it already."""
    if "?" in cleaned or "？" in cleaned:
        return True
    if lang == "zh":
        return _ZH_QUESTION.search(cleaned) is not None
    pattern = _QUESTION_RE.get(lang)
    return pattern is not None and pattern.search(fold(cleaned) if folded is None else folded) is not None
