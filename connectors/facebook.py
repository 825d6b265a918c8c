"""Facebook Page source on facebook-sdk's GraphAPI: Page feed comments, Messenger, replies, private replies.

facebook-sdk 3.1.0 refuses API versions above 3.1, so the client is built without one and
`graph.version` is set afterwards.  The Page token travels as a query parameter: it is
registered with connectors.http so no log record or error message of ours can carry it.

Cursors are JSON.  Comments: for each recently active post, Graph's `after` cursor of the last
comment read (comments listed chronologically with filter=stream), so later polls read only
newer comments.  Messenger: for each conversation, the `before` cursor of the newest message
read (messages are listed newest first; `before` pages towards newer ones).
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
CURSOR_ENTRIES_KEPT = 500  # ~35 KB of cursor JSON
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

    def __init__(self, *, page_token: str, page_id: str, base_url: str | None = None,
                 api_version: str = "v21.0", timeout: float = 10.0, page_size: int = 100,
                 clock: Clock | None = None) -> None:
        register_secrets(page_token)
        self.clock = clock or Clock()
        self.page_id = page_id
        self.base_url = base_url
        self.api_version = api_version
        self.page_size = page_size
        self._usage: dict[str, Any] = {}
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
        if action and code in (10900, 10901, 10903, 10904):
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
        state = _load_cursor(cursor)
        if kind == "comment":
            return self._fetch_comments(state)
        return self._fetch_messages(state)

    def _listing(self, what: str, path: str, *, seen: float, time_key: str, **args: Any) -> tuple[list[dict], int]:
        """Page through a feed or inbox listing until it reaches what the last poll saw
        (LISTING_PAGES at most): a burst of activity on many posts or conversations is not cut
        at the first page."""
        items: list[dict] = []
        reads = 0
        after = ""
        for _ in range(LISTING_PAGES):
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

    def _fetch_comments(self, state: dict[str, Any]) -> FetchResult:
        listing, listing_reads = self._listing("the Page feed", f"{self.page_id}/feed",
                                               seen=float(state["seen"] or 0), time_key="updated_time",
                                               fields="id,created_time,updated_time", limit=25)
        feed = {"data": listing}
        try:
            posts = [(str(p["id"]), _parse_time(p.get("updated_time") or p["created_time"]).timestamp())
                     for p in feed.get("data", [])]
        except (KeyError, TypeError, ValueError):
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what="the Page feed", detail="a post lacks id or time")) from None
        seen = float(state["seen"] or 0)
        done = dict(state["done"])
        # Pending posts first (a page of theirs is waiting), then those active since the last poll.
        active = [p for p in state["pending"]] + [pid for pid, updated in posts
                                                  if pid not in state["pending"] and _active(pid, updated, seen, done, posts)]
        batch, rest = active[:POSTS_PER_FETCH], active[POSTS_PER_FETCH:]
        entries = dict(state["entries"])
        mentions: list[NewMention] = []
        pending: list[str] = list(rest)
        for post_id in batch:
            args: dict[str, Any] = {"filter": "stream", "order": "chronological", "limit": self.page_size,
                                    "fields": COMMENT_FIELDS}
            if entries.get(post_id):
                args["after"] = entries[post_id]
            page = self._get("the comments of a Page post", f"{post_id}/comments", **args)
            mentions += self._comments(page, post_id)
            data, paging = page.get("data") or [], page.get("paging") or {}
            if data:
                _touch(entries, post_id, (paging.get("cursors") or {}).get("after", entries.get(post_id, "")))
            else:
                entries.setdefault(post_id, "")
            if paging.get("next"):
                pending.append(post_id)
            done[post_id] = dict(posts).get(post_id, seen)
        # `seen` moves to the newest activity only when the drain is complete (nothing pending).
        newest = max([seen, *(u for _, u in posts)])
        new_state = {"seen": seen if pending else newest, "entries": _prune(entries), "pending": pending,
                     "done": _prune(done) if pending else {}}
        return FetchResult(mentions=mentions, cursor=json.dumps(new_state, separators=(",", ":")),
                           quota=self._quota(), reads=listing_reads + len(batch), more=bool(pending))

    def _comments(self, page: dict[str, Any], post_id: str) -> list[NewMention]:
        try:
            out = []
            for item in page.get("data") or []:
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

    def _fetch_messages(self, state: dict[str, Any]) -> FetchResult:
        data, listing_reads = self._listing("the Page's Messenger conversations", f"{self.page_id}/conversations",
                                            seen=float(state["seen"] or 0), time_key="updated_time",
                                            platform="messenger", fields="id,updated_time,participants", limit=25)
        listing = {"data": data}
        try:
            convs = [(str(c["id"]), _parse_time(c["updated_time"]).timestamp()) for c in listing.get("data", [])]
        except (KeyError, TypeError, ValueError):
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what="conversations", detail="a conversation lacks id or time")) from None
        seen = float(state["seen"] or 0)
        done = dict(state["done"])
        active = list(state["pending"]) + [cid for cid, updated in convs
                                           if cid not in state["pending"] and _active(cid, updated, seen, done, convs)]
        batch, rest = active[:POSTS_PER_FETCH], active[POSTS_PER_FETCH:]
        entries = dict(state["entries"])
        mentions: list[NewMention] = []
        pending: list[str] = list(rest)
        backfill = dict(state["backfill"])
        first_run = not state["seen"]
        for conv_id in batch:
            args: dict[str, Any] = {"fields": MESSAGE_FIELDS, "limit": self.page_size}
            known = entries.get(conv_id)
            if conv_id in backfill:
                args["after"] = backfill[conv_id]  # older messages of a conversation that began since last poll
            elif known:
                args["before"] = known  # newer than the newest message already stored
            page = self._get("Messenger messages", f"{conv_id}/messages", **args)
            done[conv_id] = dict(convs).get(conv_id, seen)
            data, paging = page.get("data") or [], page.get("paging") or {}
            mentions += self._messages(page, conv_id)
            cursors = paging.get("cursors") or {}
            if conv_id in backfill:
                backfill.pop(conv_id)
                if paging.get("next"):
                    backfill[conv_id] = cursors.get("after", "")
                    pending.append(conv_id)
                continue
            if data:
                _touch(entries, conv_id, cursors.get("before", known or ""))
            if known and paging.get("previous"):
                pending.append(conv_id)  # more newer messages than one page
            elif not known and paging.get("next") and not first_run:
                # A conversation that began since the last poll: read its older messages too.
                # (On the very first run, history from before the monitor existed is skipped.)
                backfill[conv_id] = cursors.get("after", "")
                pending.append(conv_id)
        newest = max([seen, *(u for _, u in convs)])
        new_state = {"seen": seen if pending else newest, "entries": _prune(entries), "pending": pending,
                     "done": _prune(done) if pending else {},
                     "backfill": backfill}
        return FetchResult(mentions=mentions, cursor=json.dumps(new_state, separators=(",", ":")),
                           quota=self._quota(), reads=listing_reads + len(batch), more=bool(pending))

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
        if target.kind == "comment":
            recipient, what = {"comment_id": target.external_id}, "a private reply"
        else:
            recipient, what = {"id": target.author_id}, "a Messenger message"
        result = self._request(what, f"{self.page_id}/messages", action=True, post_args={
            "recipient": json.dumps(recipient), "message": json.dumps({"text": text}), "messaging_type": "RESPONSE"})
        if "message_id" not in result:
            raise BadPayload(msg.FACEBOOK_BAD_PAYLOAD.format(what=what, detail="no message_id in the answer"))
        return ReplyResult(external_id=str(result["message_id"]))

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
    state: dict[str, Any] = {"seen": 0.0, "entries": {}, "pending": [], "backfill": {}, "done": {}}
    if cursor:
        try:
            loaded = json.loads(cursor)
        except ValueError:
            loaded = {}
        if isinstance(loaded, dict):
            state.update({k: loaded[k] for k in state if k in loaded})
    return state


def _active(item_id: str, updated: float, seen: float, done: dict[str, float], listed: list) -> bool:
    """Whether a post or conversation has activity this drain has not read yet.  `done` lists what
    the current drain already read; `seen` only moves once a drain is complete, so an item whose
    activity falls in the same second as our read is listed again by the next poll."""
    if updated < seen:
        return False
    return item_id not in done or updated > done[item_id]


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
