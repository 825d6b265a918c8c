"""What each platform allows, as data: one frozen record per platform, and nothing that imports an SDK.

The rules check, the reply policy, wiring, `doctor`, `backfill` and the connectors' own class
attributes all read this table, so no two places can disagree about a platform.  Adding a
platform starts with a record here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType

_URL_RE = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
# X counts these code point ranges as 1 and everything else (CJK, emoji...) as 2.
_X_LIGHT = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
X_URL_WEIGHT = 23  # every URL counts as a t.co link
# the characters that count 2, found in one pass (a Python test per character cost ~1 µs each)
_X_HEAVY = re.compile("[^" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in _X_LIGHT) + "]")


def x_weighted_length(text: str) -> int:
    """Length as X counts it: URLs count 23, CJK and emoji count 2, Latin 1."""
    text = unicodedata.normalize("NFC", text)
    urls = _URL_RE.findall(text)
    rest = _URL_RE.sub("", text) if urls else text
    heavy = 0 if rest.isascii() else len(_X_HEAVY.findall(rest))
    return len(rest) + heavy + X_URL_WEIGHT * len(urls)


def character_length(text: str) -> int:
    return len(text)


def has_url(text: str) -> bool:
    return _URL_RE.search(text) is not None


@dataclass(frozen=True, slots=True)
class History:
    """How far back a platform lets us read (backfill, and the gap warnings of a long outage)."""

    mentions_kept: int | None = None  # the mentions timeline holds only the newest N posts
    search_reach: timedelta | None = None  # recent search covers only this far back
    newest_first: bool = False  # pages run from the newest post back, so an older one ends a backfill


@dataclass(frozen=True, slots=True)
class Platform:
    name: str  # the key used in rules.yaml and stored on every mention: "x", "facebook"
    label: str  # how people write it: "X", "Facebook"
    kinds: tuple[str, ...]  # mention kinds a connector fetches, in the order rules.yaml lists them
    auto_reply_kinds: frozenset[str] = frozenset()  # kinds the platform lets a bot answer unprompted
    private_reply_kinds: frozenset[str] = frozenset()  # kinds that may also get a private reply
    requires_brand_mention: bool = False  # a bot may answer only posts that name the brand account
    reply_limits: Mapping[str, int] = field(default_factory=dict)  # longest reply per kind answered
    length: Callable[[str], int] = character_length  # how the platform counts a reply's length
    template_widths: Mapping[str, int] = field(default_factory=dict)  # widest value of each template variable
    secret_names: tuple[str, ...] = ()  # environment variables holding its secrets; the first one reads
    history: History = History()
    connector: str = ""  # "package.module:Class" of the Source that serves it
    private_reply_window: timedelta | None = None  # a private reply is allowed only this soon after the post
    # Private conversations (DM, Messenger): a Page may answer only this soon after the customer's
    # last message, or up to `human_agent_window` when a person answers with the human-agent tag.
    messaging_window: timedelta | None = None
    human_agent_window: timedelta | None = None

    def max_reply_length(self, kind: str) -> int:
        """The longest reply to a `kind` post (the strictest limit when the kind is not known)."""
        return self.reply_limits.get(kind, self.template_limit)

    @property
    def template_limit(self) -> int:
        """The limit a reply template is checked against: the strictest of the kinds answered."""
        return min(self.reply_limits.values(), default=0)

    def too_long(self, *, kind: str, text: str) -> tuple[int, int] | None:
        """(length, limit) if `text` is over the limit for a `kind` post, else None."""
        length, limit = self.length(text), self.max_reply_length(kind)
        return (length, limit) if length > limit else None


X = Platform(
    name="x", label="X",
    kinds=("mention", "search", "own", "dm"),  # dm: GET /2/dm_events, the brand account's direct messages
    auto_reply_kinds=frozenset({"mention"}),
    private_reply_kinds=frozenset(),  # a DM only to someone who wrote to us first
    requires_brand_mention=True,  # X's automation rules: answer only posts that @mention the account
    # a DM allows 10,000 characters; templates are still checked against the public 280
    reply_limits=MappingProxyType({"mention": 280, "search": 280, "own": 280, "dm": 10000}),
    length=x_weighted_length,
    template_widths=MappingProxyType({"author": 16, "eta": 20, "agent": 30, "dm_link": 23}),
    secret_names=("X_BEARER_TOKEN", "X_API_KEY", "X_API_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_TOKEN_SECRET"),
    history=History(mentions_kept=800, search_reach=timedelta(days=7), newest_first=True),
    connector="connectors.x:XSource",
)

FACEBOOK = Platform(
    name="facebook", label="Facebook",
    kinds=("comment", "message"),
    auto_reply_kinds=frozenset({"comment", "message"}),
    private_reply_kinds=frozenset({"comment"}),  # one private reply per comment, in Messenger
    requires_brand_mention=False,  # comments on our own Page may be answered
    # A comment allows 8,000 characters, a Messenger text 2,000; a template may become either
    # (the private reply to a comment is a Messenger text), so templates are checked against 2,000.
    reply_limits=MappingProxyType({"comment": 8000, "message": 2000}),
    template_widths=MappingProxyType({"author": 50, "eta": 20, "agent": 30, "dm_link": 60}),
    secret_names=("FACEBOOK_PAGE_TOKEN",),
    history=History(),
    connector="connectors.facebook:FacebookSource",
    private_reply_window=timedelta(days=7),
    messaging_window=timedelta(hours=24),  # Meta's standard messaging window
    human_agent_window=timedelta(days=7),  # the HUMAN_AGENT message tag: a person's answer, up to 7 days
)

# Our own JSONL played back like a platform: it fetches every kind and answers nothing.
REPLAY = Platform(
    name="replay", label="Replay",
    kinds=("mention", "search", "comment", "message"),
    reply_limits=MappingProxyType({"mention": 280, "search": 280, "comment": 280, "message": 280}),
    connector="connectors.replay:ReplaySource",
)

# Kinds that are private conversations with one customer, on any platform.
PRIVATE_KINDS: frozenset[str] = frozenset({"dm", "message"})

PLATFORMS: Mapping[str, Platform] = MappingProxyType({p.name: p for p in (X, FACEBOOK, REPLAY)})
# The platforms people talk to us on (replay is a way of reading, not a place).
SOCIAL: Mapping[str, Platform] = MappingProxyType({p.name: p for p in (X, FACEBOOK)})


def is_private(kind: str) -> bool:
    """A private conversation (X DM, Messenger): its text is never shown in a public-facing place."""
    return kind in PRIVATE_KINDS


def platform(name: str) -> Platform:
    return PLATFORMS[name]
