"""Document sentiment in six languages, -1..1.

English is VADER on the whole cleaned text (URLs and @handles removed), as VADER was
built and validated; emoji from our table (VADER gives 😡 zero) are added to VADER's
summed valence. The other languages score sentence by sentence with our lexicons
(Danish on top of afinn's list, matched with æ/ø/å intact; Chinese on jieba's words after
folding traditional characters, so negators are words: 非常 and 特别 are not read as 非 and 别).
A negator reaches the next sentiment word within three words; around a "but" word the
words before count half and those after 1.5 times, as in VADER.
"""

from __future__ import annotations

import math
import re
from functools import cache, lru_cache
from typing import Any, Protocol

from monitor.triage.lexicon import (
    Lexicon,
    clean,
    emoji_valence,
    fold,
    fold_keeping_danish,
    lexicon,
    split_emoji,
    split_sentences,
    zh_traditional,
    zh_traditional_found,
)
from monitor.triage.negation import negates_a_negative_word
from monitor.triage.vader import Vader

SCORED_LANGUAGES = frozenset({"en", "da", "hr", "ro", "id", "zh"})
LEXICON_LANGUAGES = SCORED_LANGUAGES - {"en"}

_NEUTRAL = 0.05  # |score| below this is neutral, as in VADER's convention
_NEGATION_SCALAR = -0.74  # VADER's factor for a negated word
_INTENSIFIER_SCALAR = 1.3
_NEGATIVE_WEIGHT = 1.5  # a negative part counts more: a missed angry customer costs more than a missed fan
_NEGATION_WINDOW = 3
_TOKEN = re.compile(r"\w+|[,;:]")  # clause punctuation is kept: negation stops there
_CLAUSE_BREAK = ","
_ID_REDUPLICATION = re.compile(r"^([a-z]+)2$")  # "nyampe2" = "nyampe-nyampe"
_EMOJI_TO_VADER = 3.0  # our emoji valence (-1..1) on VADER's word scale (-4..4)
_ZH_PUNCTUATION = frozenset("，,;；:：、")
_ZH_PARTICLES = frozenset("的了地得着过啊呀吧呢啦嘛哦")  # grammatical particles: no meaning of their own
_ZH_ASKING = frozenset("吗吧呢")  # 好吗, 好吧: "OK?", "OK then"
# "good", "fast" and "so-so" only as a predicate (质量好, 物流快, 味道一般): opening a clause 好 is "OK"
# and 快 "hurry"; before an adjective or a quantity 好 is "so" (好冷, 好高, 好几次), 快 before any word
# "soon" (快到了), 一般 before a word "usually" or "ordinary" (一般都, 一般人), 老 "always" or "old"
# as a fond name (老是, 老朋友).
_ZH_PREDICATE_ONLY = frozenset({"好", "快", "一般", "老"})
_ZH_CLAUSE_FINAL = frozenset({"一般", "老"})  # only closing a clause: 味道一般, 设施很老了 (not 老医院, 一般人)
# After 好 these make it "so", "many" or "long" (好冷, 好大, 好几次, 好久), not "good" (好人, 好表, 好店).
_ZH_HAO_ADVERB = frozenset("几多久些像冷热高大小少远近长短重轻慢难饿困")
_ZH_SEVERITY = frozenset({"厉害"})  # "great" alone, "badly" after a complaint in its clause
# Returns and refunds are bad news negated or not: 不退款, 不能退货 are worse than 退款, not good.
_ZH_NOT_NEGATED = frozenset({"退货", "退款", "退钱", "换货", "退换", "退换货"})
_ZH_SPACES = re.compile(r"\s+")
_BEFORE_BUT, _AFTER_BUT = 0.5, 1.5  # VADER's weights around "but"
_LEXICON_SIDE_LANGUAGES = frozenset({"zh"})  # the lexicon's side stands wherever it found a word (`lexicon_side_stands`)


@cache
def _vader() -> Vader:
    return Vader()


def _normalize(raw: float) -> float:
    """VADER's squashing of a summed valence into -1..1."""
    return raw / math.sqrt(raw * raw + 15.0) if raw else 0.0


def _emphasis(sentence: str) -> float:
    bangs = len(sentence) - len(sentence.rstrip("!！"))
    return 1.0 + 0.1 * min(bangs, 3)


def _tokens(sentence: str, lang: str) -> list[str]:
    folded = fold_keeping_danish(sentence) if lang == "da" else fold(sentence)
    # ";" and ":" break a clause as "," does: one token for all three, replaced before tokenising
    tokens = _TOKEN.findall(folded.replace(";", _CLAUSE_BREAK).replace(":", _CLAUSE_BREAK))
    if lang == "id" and "2" in folded:  # only a word ending in 2 is reduplicated
        tokens = [m.group(1) if (m := _ID_REDUPLICATION.match(t)) else t for t in tokens]
    return tokens


def _contrast_factors(tokens: list[str], contrasts: frozenset[str]) -> tuple[int, float, float]:
    """(index of the last "but" word or -1, factor before it, factor after it): VADER's 0.5 / 1.5."""
    if contrasts.isdisjoint(tokens):
        return -1, 1.0, 1.0
    for index in range(len(tokens) - 1, -1, -1):
        if tokens[index] in contrasts:
            return index, _BEFORE_BUT, _AFTER_BUT
    return -1, 1.0, 1.0


def _score_words(tokens: list[str], lex: Lexicon) -> float:
    if lex.words.keys().isdisjoint(tokens) and lex.phrase_starts.isdisjoint(tokens):
        return 0.0  # no sentiment word nor phrase: most sentences, decided without a step per word
    raw = 0.0
    but, before_but, after_but = _contrast_factors(tokens, lex.contrasts)
    scored_end = 0  # a negator reaches only the next sentiment word: "kurang enak dan kemahalan"
    words, phrase_starts = lex.words, lex.phrase_starts
    after_phrase = 0  # the words of a phrase after its first are not read on their own
    # Only a lexicon word or a phrase's first word can score: the other words are stepped over.
    for i in [i for i, token in enumerate(tokens) if token in words or token in phrase_starts]:
        if i < after_phrase:
            continue
        value, width = words.get(tokens[i], 0.0), 1
        if tokens[i] in lex.phrase_starts:  # the longest phrase starting here wins over its first word
            for n in range(min(lex.max_phrase, len(tokens) - i), 1, -1):
                phrase = tuple(tokens[i : i + n])
                if phrase in lex.phrases:
                    value, width = lex.phrases[phrase], n
                    break
        if value:
            before = tokens[max(scored_end, i - _NEGATION_WINDOW) : i]
            if _CLAUSE_BREAK in before or (but >= 0 and not lex.contrasts.isdisjoint(before)):
                for index in range(len(before) - 1, -1, -1):
                    # "nije stiglo ništa, koji cirkus": "ništa" does not negate "cirkus"; nor across "but".
                    if before[index] == _CLAUSE_BREAK or before[index] in lex.contrasts:
                        before = before[index + 1 :]
                        break
            if not lex.negators.isdisjoint(before):
                value *= _NEGATION_SCALAR
            neighbours = tokens[i - 1 : i] + tokens[i + width : i + width + 1]
            if any(t in lex.intensifiers for t in neighbours):
                value *= _INTENSIFIER_SCALAR
            if but >= 0:
                value *= before_but if i < but else after_but
            raw += value
            scored_end = i + width
        after_phrase = i + width
    return raw


@cache
def _jieba() -> Any:
    """jieba's segmentation, knowing our lexicon's words (so 差评 stays one word), from a compact
    memory-mapped table: jieba itself (~70 MB as a dict) is never loaded by the daemon."""
    from monitor.triage import zh_segment

    lex = lexicon("zh")
    # Sorted: add_word suggests each word's frequency from the words added before it, and the lexicon's
    # sets iterate in a different order in every process (string hashing), so the table, and now and
    # then a segmentation, changed from one start to the next (很好 107 or 106).
    added = sorted(word for word in [*lex.words, *lex.negators, *lex.intensifiers] if len(word) > 1)
    return zh_segment.segmenter(added)


def zh_words(text: str) -> list[str]:
    """jieba's words of a Chinese text (dictionary only: the HMM for unknown words is 3x slower)."""
    return [w for w in _jieba().lcut(text, HMM=False) if w.strip()]


@lru_cache(maxsize=1 << 14)  # words repeat across posts
def _zh_word(word: str) -> tuple[float, bool, bool]:
    return _zh_value(word, lexicon("zh"))


@cache
def _zh_modifier_starts() -> frozenset[str]:
    lex = lexicon("zh")
    return frozenset(w[0] for w in lex.negators | lex.intensifiers)


def _zh_value(word: str, lex: Lexicon) -> tuple[float, bool, bool]:
    """(value, negated, intensified) of one jieba word, reading a word jieba keeps whole such as 不好,
    太差, 不太好 or 太好了 as negators and intensifiers + a lexicon word (+ a final particle)."""
    if word in lex.words:  # a listed word is read as listed, zero included (好好, 好不好)
        return lex.words[word], False, False
    if len(word) < 2:
        return 0.0, False, False
    if len(word) >= 3 and word[-1] in _ZH_PARTICLES:  # 太好了, 坏掉了: the particle adds nothing
        return _zh_value(word[:-1], lex)
    if _is_zh_choice_question(word):
        return 0.0, False, False
    if word[0] in _zh_modifier_starts():
        for cut in range(1, len(word)):
            head = word[:cut]
            is_negator, is_intensifier = head in lex.negators, head in lex.intensifiers
            if not (is_negator or is_intensifier):
                continue
            inner, negated, intensified = _zh_value(word[cut:], lex)
            if inner:
                return inner, negated or is_negator, intensified or is_intensifier
    return _zh_listed_ending(word, lex), False, False


def _zh_listed_ending(word: str, lex: Lexicon) -> float:
    """The value of a listed word of two or more characters that ends `word`, which jieba kept whole
    with what comes before it: 已损坏 (已 "already" + 损坏), 价格便宜, 使用方便, 比较满意. A listed
    one-character ending is not read so (正好 "just right", 只好 "had to", 出差 "business trip")."""
    for start in range(1, len(word) - 1):
        value = lex.words.get(word[start:])
        if value is not None:
            return value
    return 0.0


def _is_zh_choice_question(word: str) -> bool:
    """A-不-A, A-没-A: 好不好, 行不行, 满意不满意 ask "is it?"; they say neither."""
    for middle in "不没":
        head, found, tail = word.partition(middle)
        if found and head and head == tail:
            return True
    return False


def _in_split_choice_question(words: list[str], i: int) -> bool:
    """满意/不满意, 对/不对: the A-不-A question jieba cut in two (see `_is_zh_choice_question`)."""
    word = words[i]
    if i + 1 < len(words) and words[i + 1][:1] in "不没" and words[i + 1][1:] == word:
        return True
    return i > 0 and word[:1] in "不没" and words[i - 1] == word[1:]


def _zh_not_predicate(words: list[str], i: int) -> bool:
    """True when 好, 快, 一般 or 老 at `words[i]` is not "good", "fast", "so-so", "old" but "OK", "so"..."""
    following = words[i + 1] if i + 1 < len(words) else ""
    ends_clause = not following or following in _ZH_PUNCTUATION or (
        following in _ZH_PARTICLES and following not in _ZH_ASKING
    )
    if words[i] in _ZH_CLAUSE_FINAL:
        return not ends_clause
    if i == 0 or words[i - 1] in _ZH_PUNCTUATION:
        return True
    if ends_clause:
        return False
    if words[i] == "好":
        return following in _ZH_ASKING or following[0] in _ZH_HAO_ADVERB
    return True  # 快 before a word: "soon", "hurry"


def _score_zh(sentence: str) -> float:
    lex = lexicon("zh")
    text = fold(sentence)
    if zh_traditional_found()(text):
        text = text.translate(zh_traditional())
    if " " in text or "\t" in text:  # people (and subtitles) separate clauses with spaces: a comma's break
        text = _ZH_SPACES.sub("，", text.strip())
    words = zh_words(text)
    but, before_but, after_but = _contrast_factors(words, lex.contrasts)
    raw = 0.0
    scored_end = 0  # a negator reaches only the next sentiment word
    complaint_in_clause = False  # 发热很厉害, 疼得厉害: after a complaint 厉害 is "badly", not "great"
    for i, word in enumerate(words):
        if word in _ZH_PUNCTUATION:
            complaint_in_clause = False
            continue
        value, negated, intensified = _zh_word(word)
        if not value:
            continue
        if word in _ZH_SEVERITY and complaint_in_clause:
            value = -abs(value)
        # 好/太/超 right before a word intensify it ("好累" is "so tired", not "good").
        if word in lex.intensifiers and i + 1 < len(words) and _zh_word(words[i + 1])[0]:
            continue
        if word in _ZH_PREDICATE_ONLY and _zh_not_predicate(words, i):
            continue
        if _in_split_choice_question(words, i):
            continue
        # The negator's reach: the three words before, not counting particles (没有想象中的好: 没有
        # negates 好), up to a comma, a "but" word or the last sentiment word.
        before: list[str] = []
        for back in range(i - 1, scored_end - 1, -1):
            previous = words[back]
            if previous in _ZH_PUNCTUATION or previous in lex.contrasts:
                break
            if previous in _ZH_PARTICLES:
                continue
            before.append(previous)
            if len(before) == _NEGATION_WINDOW:
                break
        if (negated or any(w in lex.negators for w in before)) and word not in _ZH_NOT_NEGATED:
            value *= _NEGATION_SCALAR
        if intensified or any(w in lex.intensifiers for w in before[:1]):
            value *= _INTENSIFIER_SCALAR
        if but >= 0:
            value *= before_but if i < but else after_but
        raw += value
        scored_end = i + 1
        complaint_in_clause = complaint_in_clause or value < 0
    return raw


def _raw_valence(compound: float) -> float:
    """The summed valence VADER squashed into `compound` (the inverse of `_normalize`)."""
    compound = max(-0.9999, min(0.9999, compound))
    return compound * math.sqrt(15.0) / math.sqrt(1.0 - compound * compound)


def english(text: str, *, explain: bool = True) -> tuple[float, list[str]]:
    """VADER on the whole cleaned text, plus our emoji valences added to its summed valence."""
    valences = emoji_valence()
    symbols, body = split_emoji(text)
    signals = [f"emoji {symbol} {valences[symbol]:+.1f}" for symbol in symbols] if explain else []
    compound = _vader().compound(body) if body.strip() else 0.0
    if not symbols:
        return compound, signals
    raw = _raw_valence(compound) if compound else 0.0
    raw += _EMOJI_TO_VADER * sum(valences[symbol] for symbol in symbols)
    return round(_normalize(raw), 4), signals


def _sentence_score(sentence: str, lang: str) -> float:
    raw = _score_zh(sentence) if lang == "zh" else _score_words(_tokens(sentence, lang), lexicon(lang))
    return _normalize(raw * _emphasis(sentence))


def _quote(sentence: str) -> str:
    return sentence if len(sentence) <= 40 else sentence[:37] + "..."


class Combiner(Protocol):
    """A learned model that scores a post from its wording and the lexicon score (triage.complaint.NegativeModel)."""

    def sentiment(
        self, *, folded: str, lexical: float, lang: str, words: list[str] | None = None
    ) -> float: ...


def sentiment(
    text: str,
    *,
    lang: str,
    cleaned: str | None = None,
    negative_model: Combiner | None = None,
    folded: str | None = None,
    words: list[str] | None = None,
    explain: bool = True,
) -> tuple[float | None, list[str]]:
    """Document sentiment -1..1 (None when `lang` has no scorer) and the reasons (none with
    `explain=False`: the score is the same).

    In da/hr/ro/id/zh every post is scored by `negative_model`, learnt from labelled posts,
    from its wording and the lexicon score together (most negative posts contain no lexicon
    word at all), except where `lexicon_side_stands` and the two disagree. `folded` is
    `fold(cleaned)` when the caller has it already, `words` its words (`complaint.words_of`)."""
    if lang not in SCORED_LANGUAGES:
        return None, [f"sentiment unknown: no scorer for language {lang}"]
    body = clean(text) if cleaned is None else cleaned
    if lang == "en":
        score, signals = english(body, explain=explain)
        if explain and abs(score) >= _NEUTRAL:
            signals.append(f"VADER on the whole text {score:+.2f}")
        return round(score, 4), signals
    score, signals = lexicon_sentiment(text, lang=lang, cleaned=body, explain=explain)
    if negative_model is not None:
        folded = fold(body) if folded is None else folded
        learned = negative_model.sentiment(folded=folded, lexical=score, lang=lang, words=words)
        agree = (score <= -_NEUTRAL) == (learned <= -_NEUTRAL) and abs(learned) >= _NEUTRAL
        if agree or abs(score) < _NEUTRAL or not lexicon_side_stands(score, lang=lang, folded=folded, words=words):
            if explain:
                signals.append(f"learned sentiment model {learned:+.2f} (lexicon {score:+.2f})")
            score = round(max(-1.0, min(1.0, learned)), 4)
    return score, signals


def lexicon_side_stands(lexical: float, *, lang: str, folded: str, words: list[str] | None = None) -> bool:
    """Whether the lexicon's side of neutral stands over the learned model's for this post (the learned
    score is taken everywhere else): in Chinese, wherever the lexicon found a word (the n-grams read
    whole clauses and no negation scope: 不差, 非常不好); elsewhere only where the lexicon reads the post
    positive because a negator turns a negative word ("gak jelek kok", "nije loše"), which the
    learned model, having seen negation mostly in complaints, still reads as a complaint.
    `words`: the folded text's words, if the caller has them."""
    if abs(lexical) < _NEUTRAL:
        return False
    if lang in _LEXICON_SIDE_LANGUAGES:
        return True
    return lexical >= _NEUTRAL and negates_a_negative_word(folded, words, lang=lang)


def lexicon_sentiment(
    text: str, *, lang: str, cleaned: str | None = None, explain: bool = True
) -> tuple[float, list[str]]:
    """Our lexicons, sentence by sentence; a negative sentence weighs more in the mean."""
    body = clean(text) if cleaned is None else cleaned
    valences = emoji_valence()
    parts: list[float] = []
    signals: list[str] = []
    symbols, body = split_emoji(body)
    for symbol in symbols:
        parts.append(valences[symbol])
        if explain:
            signals.append(f"emoji {symbol} {valences[symbol]:+.1f}")
    for index, sentence in enumerate(split_sentences(body), start=1):
        score = _sentence_score(sentence, lang)
        if abs(score) >= _NEUTRAL:
            parts.append(score)
            if explain:
                signals.append(f"sentence {index} '{_quote(sentence)}' {score:+.2f}")
    scored = [p for p in parts if abs(p) >= _NEUTRAL]
    if not scored:
        return 0.0, signals
    weights = [_NEGATIVE_WEIGHT if p < 0 else 1.0 for p in scored]
    document = sum(p * w for p, w in zip(scored, weights, strict=True)) / sum(weights)
    return round(max(-1.0, min(1.0, document)), 4), signals


def release_caches() -> None:
    """Empty the Chinese per-word cache a burst filled (called when the daemon goes idle)."""
    _zh_word.cache_clear()
