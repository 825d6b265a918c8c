"""What every connector promises the core: the Source and Notifier protocols and their errors.

A connector makes ONE attempt per call and translates whatever its SDK raised
into one of the error types below (rate limited, auth failed, transient, bad
payload, refused).  Retrying, back-off and waiting for a rate-limit reset are the
core's: one RetryPolicy type, with named instances, in monitor/retry.py.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from connectors.platforms import Platform
from monitor.model import NewMention

if TYPE_CHECKING:
    from monitor.views import AlertView, ThreadLine

# --------------------------------------------------------------------------- errors


class ConnectorError(Exception):
    """Base of the errors a connector may raise.  Messages never contain secrets."""


class RateLimited(ConnectorError):
    def __init__(self, message: str, *, until: datetime) -> None:
        super().__init__(message)
        self.until = until


class AuthFailed(ConnectorError):
    """The token is missing, expired or revoked: polling cannot succeed until a person acts."""


class Transient(ConnectorError):
    """5xx, timeout, connection refused: try again later."""


class BadPayload(ConnectorError):
    """The platform answered something we cannot read; nothing from it may be stored."""


class RefusalReason(enum.StrEnum):
    """Why a platform refused, as a code the core can act on (never read from the message text)."""

    POLICY = "policy"  # any other rule of the platform's
    MESSAGING_WINDOW = "messaging_window"  # Messenger: a Page answers only within 24 h of the last message
    PRIVATE_REPLY_LIMIT = "private_reply_limit"  # Facebook: one private reply per comment, within 7 days
    ALREADY_REPLIED = "already_replied"  # Facebook: this comment has its one private reply already
    TOO_LONG = "too_long"
    DUPLICATE_TEXT = "duplicate_text"  # X: the account already posted this exact text


class Refused(ConnectorError):
    """The platform refused this one action for a policy reason (e.g. X 403 on a reply,
    Facebook private reply after 7 days).  Retrying will not help; a person should know."""

    def __init__(self, message: str, *, reason: RefusalReason = RefusalReason.POLICY) -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Quota:
    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    mentions: list[NewMention]
    cursor: str  # opaque to the core; stored in the same transaction as the mentions
    quota: Quota = field(default_factory=Quota)
    reads: int = 1  # API requests this fetch made (for the economy figures)
    gap_possible: bool = False  # the platform may have dropped items we never saw
    more: bool = False  # another page is waiting: the core stores this one, then fetches again at once


@dataclass(frozen=True, slots=True)
class ReplyResult:
    external_id: str  # id of the post/message we created
    url: str = ""
    dm_link: str = ""
    # who a private message went to, in the platform's private id (Facebook: the Messenger PSID
    # that a private reply to a comment returns; X: the same user id)
    recipient_id: str = ""
    # what the create endpoint has left (X's x-rate-limit-* headers): about the call, not the post
    quota: Quota = field(default=Quota(), compare=False)


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """The stored mention a reply answers, as plain data."""

    platform: str
    kind: str
    external_id: str
    author_id: str
    author_handle: str = ""
    conversation_id: str = ""
    parent_id: str = ""
    created_at: datetime | None = None
    mentions_brand: bool = False
    # a person wrote this answer (Slack's Reply… form): Messenger lets it go out with the HUMAN_AGENT
    # tag after the 24-hour window; the bot's templates never may
    human_agent: bool = False


@dataclass(frozen=True, slots=True)
class PostedMessage:
    channel: str
    ts: str


# --------------------------------------------------------------------------- protocols


@runtime_checkable
class Source(Protocol):
    platform: ClassVar[Platform]  # what the platform allows (connectors/platforms.py); the rest mirrors it
    name: ClassVar[str]  # "x", "facebook", "replay"
    kinds: ClassVar[frozenset[str]]  # which mention kinds it can fetch
    auto_reply_kinds: ClassVar[frozenset[str]]  # kinds the platform lets a bot answer unprompted
    max_reply_length: ClassVar[int]
    requires_brand_mention: ClassVar[bool]
    private_reply_kinds: ClassVar[frozenset[str]]
    secret_names: ClassVar[tuple[str, ...]]  # environment variables holding its secrets

    def fetch(self, *, kind: str, cursor: str, query: str = "") -> FetchResult: ...

    def reply_public(self, *, target: ReplyTarget, text: str) -> ReplyResult: ...

    def send_private(self, *, target: ReplyTarget, text: str) -> ReplyResult: ...

    @property
    def dm_link(self) -> str:
        """Where the bot asks people to write privately ("" when the private reply is the hand-off)."""
        ...

    def backfill_cursor(self, *, since: datetime) -> str:
        """A cursor, in this connector's own format, whose first fetch begins at `since` (backfill)."""
        ...

    def find_reply(self, *, target: ReplyTarget, text: str) -> ReplyResult | None:
        """Look for a reply of ours to `target` (reconciliation after a crash).

        Returns the reply if found, None if the platform shows there is none.
        Raises ConnectorError if it cannot be known."""
        ...

    def check_auth(self) -> dict[str, str]:
        """Who the credentials act as, from the platform itself (`doctor`): e.g. {"id", "username"}
        for X, {"id", "name"} for a Facebook Page.  Raises AuthFailed when they are refused."""
        ...


@runtime_checkable
class Notifier(Protocol):
    """Where alerts go: Slack, or the console in the offline demo."""

    name: ClassVar[str]
    messages_per_second: float | None  # the pace the outbox keeps per channel; None: no limit
    burst: int  # messages a channel may take at once before the pace applies
    lines_per_message: int  # thread notes one post may carry (a grouped thread's lines); 1: one a post

    def post(
        self, *, channel: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
        thread_ts: str = "", metadata: dict[str, Any] | None = None, broadcast: bool = False,
    ) -> PostedMessage:
        """Post `text` (ours, trusted: customer text inside it went through `escape`).
        broadcast=True also shows a thread reply in the channel (Slack's reply_broadcast)."""
        ...

    def escape(self, text: str) -> str:
        """Customer text made safe to embed in `post` text: it can never ping or format."""
        ...

    def mention_user(self, user_id: str) -> str:
        """A team member (Slack: U…/W…) or a user group (S…) named so that they are notified, in this
        notifier's own form; any other text as given."""
        ...

    def update(
        self, *, channel: str, ts: str, text: str, blocks: Sequence[dict[str, Any]] | None = None,
    ) -> None: ...

    def find_by_metadata(self, *, channel: str, key: str, value: str) -> PostedMessage | None:
        """A message we posted carrying metadata {key: value}, if any (crash reconciliation)."""
        ...

    def render_alert(self, view: AlertView) -> tuple[str, list[dict[str, Any]]]:
        """(fallback text, blocks) for an alert, in this notifier's own format, already escaped."""
        ...

    def post_ephemeral(self, *, channel: str, user: str, text: str) -> None:
        """A message only `user` sees (refusals, hints)."""
        ...

    def render_thread(self, lines: Sequence[ThreadLine]) -> tuple[str, list[dict[str, Any]]]:
        """(fallback text, blocks) for up to `lines_per_message` thread notes posted as one message."""
        ...

    def time_ref(self, when: datetime, *, fallback: str) -> str:
        """`when` as this notifier shows times (Slack: in each reader's own time zone), else `fallback`."""
        ...

    def permalink(self, *, channel: str, ts: str) -> str:
        """A link that opens the message, or "" where the notifier has none."""
        ...

    def upload_files(
        self, *, channel: str, files: list[tuple[str, bytes]], title: str, initial_comment: str,
    ) -> None:
        """Share files (name, content) in `channel` as one message (charts of the daily report)."""
        ...
