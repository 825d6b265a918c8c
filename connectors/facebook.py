"""Facebook Page source on facebook-sdk's GraphAPI: Page feed comments, Messenger, replies, private replies.

facebook-sdk 3.1.0 refuses API versions above 3.1, so the client is built without one and
`graph.version` is set afterwards.  The Page token travels as a query parameter: it is
registered with connectors.http so no log record or error message of ours can carry it.

Cursors are JSON: per recently active post or conversation, the newest item time read and when.
Reads go newest first (comments with filter=stream, order=reverse_chronological; messages as
Graph lists them) back to OVERLAP_S behind that time, so a comment that becomes visible late
(released from moderation, unhidden) or a message in the same whole second as our last read is
still found; the core drops the repeats by id.  An hourly sweep re-reads the last day.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import facebook
import requests

from connectors.base import (
    AuthFailed,
    BadPayload,
    ConnectorError,
    FetchResult,
    Quota,
    RateLimited,
    RefusalReason,
    Refused,
    ReplyResult,
    ReplyTarget,
    Transient,
)
from connectors.http import mount_platform, redact, register_secrets
from connectors.platforms import FACEBOOK, Platform
from monitor import messages as msg
from monitor.clock import Clock
from monitor.model import Author, NewMention

log = logging.getLogger(__name__)

GRAPH_HOSTS = ("https://graph.facebook.com/",)
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613}) | frozenset(range(80001, 80015))
AUTH_CODES = frozenset({102, 190, 463, 467})
TRANSIENT_CODES = frozenset({1, 2})
LISTING_PAGES = 4  # feed / inbox pages read per fetch (100 posts or conversations)
POSTS_PER_FETCH = 10  # active posts whose comments one fetch reads; the rest wait for the next (more=True)
CURSOR_ENTRIES_KEPT = 500  # ~40 KB of cursor JSON
OVERLAP_S = 900  # each read of a post or conversation goes this far behind the newest item already read
SETTLE_S = 5  # read sooner than this after its activity (whole seconds, clock skew), an item is read again
RECONCILE_EVERY_S = 3600  # the sweep that re-reads everything active in the last day
RECONCILE_WINDOW_S = 24 * 3600
RECONCILE_LISTING_PAGES = 200  # the sweep reads the listing back a day: up to 5,000 posts or conversations
COMMENT_FIELDS = "id,message,from,created_time,parent,permalink_url"
MESSAGE_FIELDS = "id,message,from,created_time"


def _parse_time(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


class FacebookSource:
    """Source for a Facebook Page: comments on its posts and its Messenger conversations."""

    platform: ClassVar[Platform] = FACEBOOK  # what Facebook allows, from connectors/platforms.py
    name: ClassVar[str] = FACEBOOK.name
    kinds: ClassVar[frozenset[str]] = frozenset(FACEBOOK.kinds)
    auto_reply_kinds: ClassVar[frozenset[str]] = FACEBOOK.auto_reply_kinds
    max_reply_length: ClassVar[int] = FACEBOOK.template_limit  # Messenger's 2,000; comments allow 8,000
    requires_brand_mention: ClassVar[bool] = FACEBOOK.requires_brand_mention
    private_reply_kinds: ClassVar[frozenset[str]] = FACEBOOK.private_reply_kinds
    secret_names: ClassVar[tuple[str, ...]] = FACEBOOK.secret_names
    rereads_s: ClassVar[int] = OVERLAP_S  # reads go back this far behind the cursor; the core drops repeats by id

    def __init__(self, *, page_token: str, page_id: str, base_url: str | None = None,
                 api_version: str = "v21.0", timeout: float = 10.0, page_size: int = 100,
                 clock: Clock | None = None, reconcile_every: float = RECONCILE_EVERY_S) -> None:
        register_secrets(page_token)
        self.reconcile_every = reconcile_every
        self.clock = clock or Clock()
        self.page_id = page_id
        self.base_url = base_url
        self.api_version = api_version
        self.page_size = page_size
        self._usage: dict[str, Any] = {}
        self._conversations: dict[str, str] = {}  # person id -> conversation id, for webhook messages
        session = requests.Session()
        mount_platform(session, hosts=GRAPH_HOSTS, base_url=base_url, timeout=timeout)
        session.hooks["response"].append(self._on_response)
        self._graph = facebook.GraphAPI(access_token=page_token, timeout=timeout, session=session)
        self._graph.version = api_version  # the SDK's own check stops at 3.1

    def __repr__(self) -> str:
        return f"FacebookSource(page_id={self.page_id!r}, base_url={self.base_url!r}, version={self.api_version!r})"

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Keep the Business Use Case usage header of the last answer (it is our quota)."""
        raw = response.headers.get("X-Business-Use-Case-Usage")
        usage: dict[str, Any] = {"status": response.status_code}
        if raw:
            try:
                entries = json.loads(raw).get(self.page_id) or []
                usage.update(entries[0] if entries else {})
            except (ValueError, AttributeError, IndexError):
                pass  # a malformed usage header must not fail the read it came with
        self._usage = usage

    def _quota(self) -> Quota:
        usage = self._usage
        if "call_count" not in usage:
            return Quota()
        used = max(int(usage.get(k, 0) or 0) for k in ("call_count", "total_cputime", "total_time"))
        regain = int(usage.get("estimated_time_to_regain_access", 0) or 0)
        return Quota(limit=100, remaining=max(0, 100 - used),
                     reset_at=self.clock.now() + timedelta(minutes=regain) if regain else None)

    # ------------------------------------------------------------------ requests

    def _get(self, what: str, path: str, **args: Any) -> dict[str, Any]:
        return self._request(what, path, args=args)

    def _request(self, what: str, path: str, *, args: dict[str, Any] | None = None,
                 post_args: dict[str, Any] | None = None, action: bool = False) -> dict[str, Any]:
        """One Graph request; every failure leaves as one of the connector error types."""
        try:
            result = self._graph.request(f"{self.api_version}/{path}", args=args, post_args=post_args)
        except facebook.GraphAPIError as exc:
            raise self._translate(exc, what, action=action) from None
        except requests.Timeout:
            raise Transient(msg.FACEBOOK_TRANSIENT.format(what=what, detail="timed out")) from None
        except requests.ConnectionError:
            raise Transient(msg.FACEBOOK_TRANSIENT.format(what=what, detail="connection failed")) from None
        except ValueError:  # requests' JSONDecodeError: a cut-off or garbled body
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail="the body is not valid JSON")) from None
        except requests.RequestException as exc:
            raise Transient(msg.FACEBOOK_TRANSIENT.format(what=what, detail=type(exc).__name__)) from None
        if not isinstance(result, dict):
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail="the body is not a JSON object"))
        return result

    def _translate(self, exc: facebook.GraphAPIError, what: str, *, action: bool) -> ConnectorError:
        error = exc.result.get("error", {}) if isinstance(exc.result, dict) else {}
        error = error if isinstance(error, dict) else {}
        code, subcode = error.get("code"), error.get("error_subcode")
        detail = redact(f"{error.get('message') or exc.message} (code {code}"
                        + (f", subcode {subcode})" if subcode else ")"))
        status = self._usage.get("status", 0)
        if code in RATE_LIMIT_CODES:
            regain = int(self._usage.get("estimated_time_to_regain_access", 0) or 0)
            until = self.clock.now() + timedelta(minutes=regain or 1)
            return RateLimited(msg.FACEBOOK_RATE_LIMITED.format(what=what, detail=detail, until=until), until=until)
        if code in AUTH_CODES or error.get("type") == "OAuthException" and code in (None, 190):
            return AuthFailed(msg.FACEBOOK_AUTH.format(what=what, detail=detail))
        if code in TRANSIENT_CODES or error.get("is_transient") or status >= 500:
            return Transient(msg.FACEBOOK_TRANSIENT.format(what=what, detail=detail))
        if action and code == 10 and subcode == 2018278:
            return Refused(msg.FACEBOOK_MESSENGER_WINDOW.format(detail=detail), reason=RefusalReason.MESSAGING_WINDOW)
        if action and code == 10900:  # "Activity already replied to": a private reply to it went out
            return Refused(msg.FACEBOOK_PRIVATE_REPLY.format(detail=detail), reason=RefusalReason.ALREADY_REPLIED)
        if action and code in (10901, 10903, 10904):
            return Refused(msg.FACEBOOK_PRIVATE_REPLY.format(detail=detail), reason=RefusalReason.PRIVATE_REPLY_LIMIT)
        if action:
            return Refused(msg.FACEBOOK_REFUSED.format(what=what, detail=detail))
        if code == 10 or (isinstance(code, int) and 200 <= code < 300):
            return AuthFailed(msg.FACEBOOK_AUTH.format(what=what, detail=detail))  # a permission is missing
        if not error:
            return BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail=redact(str(exc.message))[:200]))
        return BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail=detail))

    # ------------------------------------------------------------------ fetch

    def fetch(self, *, kind: str, cursor: str, query: str = "") -> FetchResult:
        if kind not in self.kinds:
            raise ValueError(f"FacebookSource fetches {sorted(self.kinds)}, not {kind!r}")
        return self._fetch_items(kind, _load_cursor(cursor))

    def _listing(self, what: str, path: str, *, seen: float, time_key: str, pages: int = LISTING_PAGES,
                 **args: Any) -> tuple[list[dict], int]:
        """Page through a feed or inbox listing until it reaches `seen` (`pages` at most): a burst of
        activity on many posts or conversations is not cut at the first page."""
        items: list[dict] = []
        reads = 0
        after = ""
        for _ in range(pages):
            page = self._get(what, path, **args, **({"after": after} if after else {}))
            reads += 1
            data = page.get("data") or []
            items += data
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after", "")
            try:
                oldest = min((_parse_time(d.get(time_key) or d["created_time"]).timestamp() for d in data),
                             default=0.0)
            except (KeyError, TypeError, ValueError):
                raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail="an item lacks its time")) from None
            # The next page is worth a read only while this whole page is newer than the last poll:
            # a burst.  (The inbox is ordered by activity; the feed mostly is, by Graph's ordering.)
            if not paging.get("next") or not after or not data or (seen and oldest < seen):
                break
        return items, reads

    def _fetch_items(self, kind: str, state: dict[str, Any]) -> FetchResult:
        """One poll of the posts' comments or of the conversations' messages.

        Which posts or conversations: those whose activity time moved past what we read last,
        those read less than SETTLE_S after their activity (Graph's whole seconds hide a message in
        that same second), and, every `reconcile_every` seconds, all active in the last day.
        Each is read newest first, back to OVERLAP_S behind the newest item already read (or the
        day, for the sweep): repeats are dropped by id in the core, late-visible items are not.
        """
        now = self.clock.now().timestamp()
        if kind == "comment":
            what, path = "the Page feed", f"{self.page_id}/feed"
            list_args: dict[str, Any] = {"fields": "id,created_time,updated_time", "limit": 25}
        else:
            what, path = "the Page's Messenger conversations", f"{self.page_id}/conversations"
            list_args = {"platform": "messenger", "fields": "id,updated_time,participants", "limit": 25}
        seen = float(state["seen"] or 0)
        first_run = not seen
        sweep = {str(k): float(v) for k, v in dict(state["sweep"]).items()}
        reconcile = not first_run and now - float(state["reconciled_at"] or 0) >= self.reconcile_every
        day_ago = now - RECONCILE_WINDOW_S
        listing, listing_reads = self._listing(
            what, path, seen=(day_ago if reconcile else seen - OVERLAP_S) if seen else 0.0,
            time_key="updated_time", pages=RECONCILE_LISTING_PAGES if reconcile else LISTING_PAGES, **list_args)
        try:
            listed = {str(i["id"]): _parse_time(i.get("updated_time") or i["created_time"]).timestamp()
                      for i in listing}
        except (KeyError, TypeError, ValueError):
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail="an item lacks id or time")) from None
        entries = {k: _entry(v, seen) for k, v in dict(state["entries"]).items()}
        due = list(state["pending"])
        recheck: list[str] = []  # read within SETTLE_S of their activity (Graph's whole seconds, clock skew)
        for item_id, updated in listed.items():
            entry = entries.get(item_id)
            active = updated >= seen if entry is None else updated > entry["u"] and updated >= seen - OVERLAP_S
            if reconcile and updated >= day_ago:
                sweep[item_id] = day_ago
                active = True
            if active:
                due.append(item_id)
            elif entry is not None and entry["r"] < entry["u"] + SETTLE_S:
                recheck.append(item_id)
        due = list(dict.fromkeys(due))
        batch, pending = due[:POSTS_PER_FETCH], due[POSTS_PER_FETCH:]
        # Rechecks fill what room is left and never hold a drain open: once a burst is read, they are.
        batch += [i for i in recheck if i not in due][:POSTS_PER_FETCH - len(batch)]
        mentions: list[NewMention] = []
        for item_id in batch:
            mentions += self._read_item(kind, item_id, entries=entries, sweep=sweep, pending=pending,
                                        updated=listed.get(item_id), now=now, first_run=first_run)
        new_state = {"seen": max([seen, *listed.values()]), "entries": _prune(entries),
                     "pending": list(dict.fromkeys(pending)), "sweep": sweep,
                     "reconciled_at": now if reconcile or first_run else float(state["reconciled_at"] or 0)}
        return FetchResult(mentions=mentions, cursor=json.dumps(new_state, separators=(",", ":")),
                           quota=self._quota(), reads=listing_reads + len(batch), more=bool(pending))

    def _read_item(self, kind: str, item_id: str, *, entries: dict[str, Any], sweep: dict[str, float],
                   pending: list[str], updated: float | None, now: float, first_run: bool) -> list[NewMention]:
        """One page of a post's comments or a conversation's messages, newest first; the entry
        and `pending` say whether an older page is still to be read."""
        known = item_id in entries
        entry = dict(entries.get(item_id) or {"h": 0.0, "u": -1.0, "r": 0.0})
        draining = bool(entry.get("d"))
        if draining:
            stop = float(entry["s"])
        else:
            # a conversation found on the very first run: history from before the monitor is skipped
            stop = entry["h"] - OVERLAP_S if known else (
                float("inf") if first_run and kind == "message" else float("-inf"))
            if item_id in sweep:
                stop = min(stop, sweep[item_id])
            entry["u"], entry["r"] = updated if updated is not None else entry["u"], now
        more = {"after": entry["d"]} if draining else {}
        if kind == "comment":
            page = self._get("the comments of a Page post", f"{item_id}/comments", filter="stream",
                             order="reverse_chronological", limit=self.page_size, fields=COMMENT_FIELDS, **more)
            mentions = self._comments(page, item_id)
        else:
            page = self._get("Messenger messages", f"{item_id}/messages", fields=MESSAGE_FIELDS,
                             limit=self.page_size, **more)
            mentions = self._messages(page, item_id)
        data, paging = page.get("data") or [], page.get("paging") or {}
        times = [m.created_at.timestamp() for m in mentions]
        top = float(entry["t"]) if draining else max([entry["h"], *times])
        after = (paging.get("cursors") or {}).get("after", "") if paging.get("next") else ""
        if data and after and min(times) >= stop:
            entry.update(d=after, s=stop, t=top)  # older items wait for the next page
            pending.append(item_id)
        else:
            entry = {"h": top, "u": entry["u"], "r": entry["r"]}
            sweep.pop(item_id, None)
        _touch(entries, item_id, entry)
        return mentions

    def _comments(self, page: dict[str, Any], post_id: str) -> list[NewMention]:
        try:
            out = []
            for item in reversed(page.get("data") or []):  # newest first on the wire
                person = item.get("from") or {}
                out.append(NewMention(
                    platform="facebook", kind="comment", external_id=str(item["id"]), text=str(item.get("message", "")),
                    author=Author(id=str(person.get("id", "")), name=str(person.get("name", ""))),
                    created_at=_parse_time(item["created_time"]), conversation_id=post_id,
                    parent_id=str((item.get("parent") or {}).get("id", "")),
                    url=item.get("permalink_url") or f"https://www.facebook.com/{item['id']}",
                    mentions_brand=True, from_brand=str(person.get("id", "")) == self.page_id, raw=item))
            return out
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what="comments", detail=f"missing or wrong field {exc}")) from None

    def _messages(self, page: dict[str, Any], conv_id: str) -> list[NewMention]:
        try:
            out = []
            for item in sorted(page.get("data") or [], key=lambda m: m["created_time"]):
                person = item.get("from") or {}
                out.append(NewMention(
                    platform="facebook", kind="message", external_id=str(item["id"]), text=str(item.get("message", "")),
                    author=Author(id=str(person.get("id", "")), name=str(person.get("name", ""))),
                    created_at=_parse_time(item["created_time"]), conversation_id=conv_id,
                    url=f"https://business.facebook.com/latest/inbox/messenger?asset_id={self.page_id}",
                    mentions_brand=True, from_brand=str(person.get("id", "")) == self.page_id, raw=item))
            return out
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what="messages", detail=f"missing or wrong field {exc}")) from None

    # ------------------------------------------------------------------ replies

    def reply_public(self, *, target: ReplyTarget, text: str) -> ReplyResult:
        if target.kind != "comment":
            raise Refused(msg.FACEBOOK_NOT_PUBLIC)
        result = self._request("a comment reply", f"{target.external_id}/comments", post_args={"message": text},
                               action=True)
        if "id" not in result:
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what="a comment reply", detail="no id in the answer"))
        return ReplyResult(external_id=str(result["id"]), url=f"https://www.facebook.com/{result['id']}")

    def send_private(self, *, target: ReplyTarget, text: str) -> ReplyResult:
        """A private reply to a comment (Graph answers with the person's Messenger PSID), or a Messenger
        message: inside the 24-hour window as a response; after it, a person's answer (`target.human_agent`)
        goes with the HUMAN_AGENT tag, which Messenger allows up to 7 days after the customer's last
        message (`target.created_at`)."""
        post_args = {"message": json.dumps({"text": text}), "messaging_type": "RESPONSE"}
        if target.kind == "comment":
            recipient, what = {"comment_id": target.external_id}, "a private reply"
        else:
            recipient, what = {"id": target.author_id}, "a Messenger message"
            window = FACEBOOK.messaging_window
            if target.human_agent and window is not None and target.created_at is not None \
                    and self.clock.now() - target.created_at > window:
                post_args.update(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
        result = self._request(what, f"{self.page_id}/messages", action=True,
                               post_args={"recipient": json.dumps(recipient), **post_args})
        if "message_id" not in result:
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail="no message_id in the answer"))
        return ReplyResult(external_id=str(result["message_id"]), recipient_id=str(result.get("recipient_id", "")))

    def conversation_of(self, person_id: str) -> str:
        """The Messenger conversation with a person (webhook events name only the person); cached."""
        if person_id not in self._conversations:
            found = self._get("a Messenger conversation", f"{self.page_id}/conversations", platform="messenger",
                              user_id=person_id, fields="id")
            ids = [str(c.get("id", "")) for c in found.get("data") or []]
            if not ids:
                return ""
            self._conversations[person_id] = ids[0]
            if len(self._conversations) > CURSOR_ENTRIES_KEPT:
                self._conversations.pop(next(iter(self._conversations)))
        return self._conversations[person_id]

    def check_auth(self) -> dict[str, str]:
        """GET /{page-id} with the Page token: which Page it opens (doctor)."""
        page = self._get("the Page", self.page_id, fields="id,name")
        return {"id": str(page.get("id", "")), "name": str(page.get("name", ""))}

    @property
    def dm_link(self) -> str:
        return ""  # the private reply to a comment is the hand-off

    def backfill_cursor(self, *, since: datetime) -> str:
        """A cursor that reads the posts and conversations active since `since`."""
        return json.dumps({"seen": since.timestamp()}, separators=(",", ":"))

    def find_reply(self, *, target: ReplyTarget, text: str) -> ReplyResult | None:
        """Our public reply under a comment, if the Page posted one with this text."""
        if target.kind != "comment":
            raise Transient(msg.FACEBOOK_TRANSIENT.format(what="reply reconciliation",
                                                 detail="only comment replies can be looked up"))
        page = self._get("reply reconciliation", f"{target.external_id}/comments", fields="id,message,from",
                         limit=100)
        for item in page.get("data") or []:
            if (item.get("from") or {}).get("id") == self.page_id and (
                    not text or str(item.get("message", "")).strip() == text.strip()):
                return ReplyResult(external_id=str(item["id"]), url=f"https://www.facebook.com/{item['id']}")
        if (page.get("paging") or {}).get("next"):
            raise Transient(msg.FACEBOOK_TRANSIENT.format(what="reply reconciliation", detail="too many replies to scan"))
        return None


def _load_cursor(cursor: str) -> dict[str, Any]:
    state: dict[str, Any] = {"seen": 0.0, "entries": {}, "pending": [], "sweep": {}, "reconciled_at": 0.0}
    if cursor:
        try:
            loaded = json.loads(cursor)
        except ValueError:
            loaded = {}
        if isinstance(loaded, dict):
            state.update({k: loaded[k] for k in state if k in loaded})
    return state


def _entry(value: Any, seen: float) -> dict[str, Any]:
    """One post's or conversation's read state: h = newest item time read, u = its activity time
    then, r = when we read it; while a read goes on page by page, d = the next page's cursor,
    s = how far back it reads, t = the newest item time of that read.  A cursor string from before
    overlap reads becomes "read up to the last poll"."""
    if isinstance(value, dict) and {"h", "u", "r"} <= value.keys():
        return value
    return {"h": seen, "u": seen, "r": seen + SETTLE_S}


def _touch(entries: dict[str, Any], key: str, value: Any) -> None:
    """Set an entry and make it the newest, so that pruning drops the least recently active."""
    entries.pop(key, None)
    entries[key] = value


def _prune(entries: dict[str, Any]) -> dict[str, Any]:
    """Keep the cursor small: the most recently active entries win (a dropped post or conversation
    that wakes up again is read from its newest page; its repeats are dropped as duplicates)."""
    if len(entries) <= CURSOR_ENTRIES_KEPT:
        return entries
    return dict(list(entries.items())[-CURSOR_ENTRIES_KEPT:])
