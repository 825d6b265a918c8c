"""X (Twitter) source on tweepy.Client: mentions timeline, recent search, direct messages, replies, DM hand-off link.

One API request per call; errors become the types of connectors/base.py.  The fetch cursor is a
small JSON document: `since` is the newest tweet id already stored; while a backlog is drained
page by page (newest first, as X returns them) it also holds the page token and the newest id of
the drain, which becomes `since` once the last page is stored.  Every page is stored with its
cursor, so no tweet is read twice, across restarts too.

Direct messages (`kind: dm`) come from GET /2/dm_events (user context, scope dm.read), which has
no since_id: pages run newest first and a drain stops at the first event id already stored.  A new
source (empty cursor) reads the newest page only; `backfill` reads further back (its `start`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
import tweepy

from connectors.base import (
    AuthFailed,
    BadPayload,
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
from connectors.platforms import Platform, X, is_private
from monitor import messages as msg
from monitor.clock import Clock
from monitor.model import Author, NewMention

log = logging.getLogger(__name__)

X_HOSTS = ("https://api.twitter.com/", "https://api.x.com/")
MENTIONS_KEPT = X.history.mentions_kept or 0  # the mentions timeline reaches back this many posts only
SEARCH_REACH = X.history.search_reach or timedelta(0)  # recent search refuses an older since_id
PAGE_SIZE = 100
TWEET_FIELDS = ["created_at", "conversation_id", "lang", "referenced_tweets", "in_reply_to_user_id", "author_id"]
USER_FIELDS = ["public_metrics", "verified", "username", "name"]
DM_EVENT_FIELDS = ["id", "event_type", "text", "sender_id", "created_at", "dm_conversation_id"]
DM_REFUSED_MARKERS = ("cannot send messages to this user", "not permitted to send")
REPLY_RULE_MARKERS = ("reply to this conversation is not allowed", "not been mentioned or otherwise engaged")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


class XSource:
    """Source for X: mentions of the brand account and keyword searches."""

    platform: ClassVar[Platform] = X  # what X allows, from connectors/platforms.py
    name: ClassVar[str] = X.name
    kinds: ClassVar[frozenset[str]] = frozenset(X.kinds)
    auto_reply_kinds: ClassVar[frozenset[str]] = X.auto_reply_kinds
    max_reply_length: ClassVar[int] = X.max_reply_length("mention")
    requires_brand_mention: ClassVar[bool] = X.requires_brand_mention
    private_reply_kinds: ClassVar[frozenset[str]] = X.private_reply_kinds
    secret_names: ClassVar[tuple[str, ...]] = X.secret_names

    def __init__(self, *, bearer_token: str, user_id: str, brand_handle: str, api_key: str = "",
                 api_secret: str = "", access_token: str = "", access_token_secret: str = "",
                 base_url: str | None = None, timeout: float = 10.0, page_size: int = PAGE_SIZE,
                 clock: Clock | None = None) -> None:
        register_secrets(bearer_token, api_key, api_secret, access_token, access_token_secret)
        self.clock = clock or Clock()
        self.user_id = user_id
        self.brand_handle = brand_handle.lstrip("@")
        self.base_url = base_url
        self.page_size = page_size
        self._user_auth = all((api_key, api_secret, access_token, access_token_secret))
        # return_type=Response: we need the rate-limit headers and parse the JSON ourselves.
        self._client = tweepy.Client(bearer_token=bearer_token, consumer_key=api_key or None,
                                     consumer_secret=api_secret or None, access_token=access_token or None,
                                     access_token_secret=access_token_secret or None,
                                     return_type=requests.Response, wait_on_rate_limit=False)
        mount_platform(self._client.session, hosts=X_HOSTS, base_url=base_url, timeout=timeout)
        self._mention_re = re.compile(rf"(?<![\w@])@{re.escape(self.brand_handle)}\b", re.IGNORECASE)

    def __repr__(self) -> str:
        return (f"XSource(user_id={self.user_id!r}, brand_handle={self.brand_handle!r}, "
                f"base_url={self.base_url!r}, user_auth={self._user_auth})")

    @property
    def dm_link(self) -> str:
        return f"https://x.com/messages/compose?recipient_id={self.user_id}"

    # ------------------------------------------------------------------ fetch

    def fetch(self, *, kind: str, cursor: str, query: str = "") -> FetchResult:
        if kind not in self.kinds:
            raise ValueError(f"XSource fetches {sorted(self.kinds)}, not {kind!r}")
        state = _load_cursor(cursor)
        if kind == "dm":
            return self._fetch_dms(state)
        params: dict[str, Any] = {"max_results": self.page_size, "expansions": ["author_id"],
                                  "tweet_fields": TWEET_FIELDS, "user_fields": USER_FIELDS}
        window_gap = False
        if kind == "search" and state["since"] and not state["token"] and state["since_at"]:
            oldest_allowed = self.clock.now() - SEARCH_REACH + timedelta(minutes=1)
            if datetime.fromtimestamp(state["since_at"], UTC) < oldest_allowed:
                state.update(since=None, start=oldest_allowed.strftime("%Y-%m-%dT%H:%M:%SZ"))
                window_gap = True
                log.warning(msg.X_SEARCH_GAP, state["start"])
        if state["since"]:
            params["since_id"] = state["since"]
        if state["start"]:
            params["start_time"] = state["start"]
        if kind == "mention":
            if state["token"]:
                params["pagination_token"] = state["token"]
            what = "the mentions timeline"
            response = self._call(what, lambda: self._client.get_users_mentions(self.user_id, **params))
        elif kind == "own":
            # The brand's own posts: replies an agent typed on X are first responses we must see.
            if state["token"]:
                params["pagination_token"] = state["token"]
            what = "the brand's own posts"
            response = self._call(what, lambda: self._client.get_users_tweets(self.user_id, **params))
        else:
            if state["token"]:
                params["next_token"] = state["token"]
            params["max_results"] = max(10, self.page_size)  # recent search takes 10..100
            # @mentions come through the mentions timeline; reading them here too would cost a second read
            search = query or f'"{self.brand_handle}" -@{self.brand_handle} -from:{self.brand_handle} -is:retweet'
            what = "recent search"
            response = self._call(what, lambda: self._client.search_recent_tweets(search, **params))
        body = _json(response, what)
        mentions = self._mentions(body, kind=kind, what=what)
        meta = body.get("meta") or {}
        if state["token"]:
            top, top_at = state["top"], state["top_at"]
        elif mentions:  # X lists newest first: the first item of a drain is its newest
            top, top_at = mentions[0].external_id, mentions[0].created_at.timestamp()
        else:
            top, top_at = state["since"], state["since_at"]
        read = state["read"] + len(mentions)
        next_token = meta.get("next_token")
        gap = window_gap
        if next_token:
            new_state = {**state, "token": next_token, "top": top, "top_at": top_at, "read": read}
        else:
            new_state = {"since": top, "since_at": top_at}
            # A drain that reached MENTIONS_KEPT items may have lost older ones X no longer serves.
            if kind == "mention" and bool(state["since"]) and read >= MENTIONS_KEPT:
                gap = True
                log.warning(msg.X_GAP, read, MENTIONS_KEPT)
        compact = {k: v for k, v in new_state.items() if v not in (None, 0)}
        return FetchResult(mentions=mentions, cursor=json.dumps(compact, separators=(",", ":")),
                           quota=_quota(response), reads=1, gap_possible=gap, more=bool(next_token))

    def _fetch_dms(self, state: dict[str, Any]) -> FetchResult:
        """One page of the account's direct messages, newest first; the drain ends at `since`."""
        if not self._user_auth:
            raise AuthFailed(msg.X_NO_USER_AUTH)
        what = "direct messages"
        params: dict[str, Any] = {"max_results": min(max(self.page_size, 1), 100), "event_types": "MessageCreate",
                                  "dm_event_fields": DM_EVENT_FIELDS, "expansions": ["sender_id"],
                                  "user_fields": USER_FIELDS, "user_auth": True}
        if state["token"]:
            params["pagination_token"] = state["token"]
        response = self._call(what, lambda: self._client.get_direct_message_events(**params))
        body = _json(response, what)
        since = int(state["since"] or 0)
        start = _parse_time(state["start"]) if state["start"] else None
        events = self._dm_events(body, what=what)
        fresh = [m for m in events if int(m.external_id) > since and (start is None or m.created_at >= start)]
        reached = len(fresh) < len(events)  # an event already stored (or before the backfill start): done
        top = state["top"] if state["token"] else (events[0].external_id if events else state["since"])
        next_token = (body.get("meta") or {}).get("next_token")
        if not (state["since"] or state["token"] or state["start"]):
            next_token = None  # a new source reads the newest page only: a month of old DMs would raise old alerts
        if next_token and not reached:
            new_state = {"since": state["since"], "start": state["start"], "token": next_token, "top": top}
        else:
            new_state = {"since": top}
        compact = {k: v for k, v in new_state.items() if v not in (None, 0)}
        return FetchResult(mentions=fresh, cursor=json.dumps(compact, separators=(",", ":")),
                           quota=_quota(response), reads=1, more=bool(next_token) and not reached)

    def _dm_events(self, body: dict[str, Any], *, what: str) -> list[NewMention]:
        try:
            users = {u["id"]: u for u in (body.get("includes") or {}).get("users", [])}
            out = []
            for event in body.get("data") or []:
                if event.get("event_type", "MessageCreate") != "MessageCreate":
                    continue
                sender = str(event["sender_id"])
                user = users.get(sender, {"id": sender})
                conversation = str(event.get("dm_conversation_id") or "-".join(sorted((sender, self.user_id), key=int)))
                out.append(NewMention(
                    platform="x", kind="dm", external_id=str(event["id"]), text=str(event.get("text", "")),
                    author=Author(id=sender, handle=user.get("username", ""), name=user.get("name", ""),
                                  followers=int((user.get("public_metrics") or {}).get("followers_count", 0)),
                                  verified=bool(user.get("verified", False))),
                    created_at=_parse_time(event["created_at"]), conversation_id=conversation,
                    url=f"https://x.com/messages/{conversation}", mentions_brand=True,
                    # our own outgoing DMs: stored, never a customer's message
                    from_brand=sender == self.user_id, raw={"dm_event": event, "sender": user}))
            return out
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadPayload(msg.X_BAD_PAYLOAD.format(what=what, detail=f"missing or wrong field {exc}")) from None

    def _mentions(self, body: dict[str, Any], *, kind: str, what: str) -> list[NewMention]:
        try:
            users = {u["id"]: u for u in (body.get("includes") or {}).get("users", [])}
            out = []
            for tweet in body.get("data") or []:
                user = users.get(tweet["author_id"], {"id": tweet["author_id"]})
                handle = user.get("username", "")
                parent = next((r["id"] for r in tweet.get("referenced_tweets") or [] if r.get("type") == "replied_to"),
                              "")
                out.append(NewMention(
                    platform="x", kind=kind, external_id=str(tweet["id"]), text=str(tweet["text"]),
                    author=Author(id=str(user["id"]), handle=handle, name=user.get("name", ""),
                                  followers=int((user.get("public_metrics") or {}).get("followers_count", 0)),
                                  verified=bool(user.get("verified", False))),
                    created_at=_parse_time(tweet["created_at"]),
                    conversation_id=str(tweet.get("conversation_id") or tweet["id"]), parent_id=str(parent),
                    url=f"https://x.com/{handle or 'i/web'}/status/{tweet['id']}",
                    lang_hint="" if tweet.get("lang") in (None, "und") else tweet["lang"],
                    mentions_brand=bool(self._mention_re.search(tweet["text"])),
                    from_brand=str(tweet["author_id"]) == self.user_id,
                    raw={"tweet": tweet, "author": user}))
            return out
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadPayload(msg.X_BAD_PAYLOAD.format(what=what, detail=f"missing or wrong field {exc}")) from None

    # ------------------------------------------------------------------ replies

    def reply_public(self, *, target: ReplyTarget, text: str) -> ReplyResult:
        if target.kind == "search" and not target.mentions_brand:
            raise Refused(msg.X_KEYWORD_HIT.format(handle=self.brand_handle))
        if is_private(target.kind):
            raise Refused(msg.X_DM_NOT_INVITED.format(handle=self.brand_handle))
        if (over := X.too_long(kind=target.kind, text=text)) is not None:
            raise Refused(msg.X_TOO_LONG.format(length=over[0], limit=over[1]), reason=RefusalReason.TOO_LONG)
        if not self._user_auth:
            raise AuthFailed(msg.X_NO_USER_AUTH)
        # The DM hand-off travels as X's direct_message_deep_link (a "Send a private message" button
        # under the reply), not as a URL in the text, which X prices far higher.
        response = self._call("a reply", lambda: self._client.create_tweet(
            text=text, in_reply_to_tweet_id=target.external_id, direct_message_deep_link=self.dm_link,
            user_auth=True), posting=True)
        data = _json(response, "a reply").get("data") or {}
        if "id" not in data:
            raise BadPayload(msg.X_BAD_PAYLOAD.format(what="a reply", detail="no id in the answer"))
        return ReplyResult(external_id=str(data["id"]), url=f"https://x.com/{self.brand_handle}/status/{data['id']}",
                           dm_link=self.dm_link, quota=_quota(response))

    def send_private(self, *, target: ReplyTarget, text: str) -> ReplyResult:
        """POST /2/dm_conversations/with/:participant_id/messages: only to someone who wrote to us in DM."""
        if not is_private(target.kind):
            raise Refused(msg.X_DM_NOT_INVITED.format(handle=self.brand_handle))
        if not self._user_auth:
            raise AuthFailed(msg.X_NO_USER_AUTH)
        response = self._call("a direct message", lambda: self._client.create_direct_message(
            participant_id=target.author_id, text=text, user_auth=True), posting=True)
        data = _json(response, "a direct message").get("data") or {}
        if "dm_event_id" not in data:
            raise BadPayload(msg.X_BAD_PAYLOAD.format(what="a direct message", detail="no dm_event_id in the answer"))
        return ReplyResult(external_id=str(data["dm_event_id"]), dm_link=self.dm_link, quota=_quota(response),
                           recipient_id=target.author_id)

    def _find_dm(self, *, target: ReplyTarget, text: str) -> ReplyResult | None:
        """Our DM with this text to the customer, newer than their message (reconciliation after a crash)."""
        if not self._user_auth:
            raise AuthFailed(msg.X_NO_USER_AUTH)
        response = self._call("DM reconciliation", lambda: self._client.get_direct_message_events(
            participant_id=target.author_id, dm_event_fields=DM_EVENT_FIELDS, event_types="MessageCreate",
            max_results=100, user_auth=True))
        for event in _json(response, "DM reconciliation").get("data") or []:
            if str(event.get("sender_id")) == self.user_id and int(event.get("id", 0)) > int(target.external_id or 0) \
                    and (not text or str(event.get("text", "")).strip() == text.strip()):
                return ReplyResult(external_id=str(event["id"]), dm_link=self.dm_link, recipient_id=target.author_id)
            if int(event.get("id", 0)) <= int(target.external_id or 0):
                return None  # newest first: older than the customer's message, so ours is not there
        return None

    def backfill_cursor(self, *, since: datetime) -> str:
        """A cursor that starts at `since`: it becomes the API's start_time."""
        return json.dumps({"start": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}, separators=(",", ":"))

    def find_reply(self, *, target: ReplyTarget, text: str) -> ReplyResult | None:
        if is_private(target.kind):
            return self._find_dm(target=target, text=text)
        conversation = target.conversation_id or target.external_id
        query = f"conversation_id:{conversation} from:{self.brand_handle}"
        token = None
        for _ in range(5):  # a conversation with more than 500 brand replies is not ours to scan
            params: dict[str, Any] = {"max_results": 100, "tweet_fields": ["referenced_tweets", "author_id"]}
            if token:
                params["next_token"] = token
            response = self._call("reply reconciliation", lambda p=params: self._client.search_recent_tweets(query, **p))
            body = _json(response, "reply reconciliation")
            for tweet in body.get("data") or []:
                refs = tweet.get("referenced_tweets") or []
                if any(r.get("type") == "replied_to" and r.get("id") == target.external_id for r in refs) and (
                        not text or tweet.get("text", "").strip() == text.strip()):
                    return ReplyResult(external_id=str(tweet["id"]),
                                       url=f"https://x.com/{self.brand_handle}/status/{tweet['id']}",
                                       dm_link=self.dm_link)
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return None
        raise Transient(msg.X_TRANSIENT.format(what="reply reconciliation", detail="too many replies to scan"))

    def check_auth(self) -> dict[str, str]:
        """GET /2/users/me with the user-context keys: the account replies would be posted as (doctor)."""
        if not self._user_auth:
            raise AuthFailed(msg.X_NO_USER_AUTH)
        response = self._call("users/me", lambda: self._client.get_me(user_auth=True))
        data = _json(response, "users/me").get("data") or {}
        return {"id": str(data.get("id", "")), "username": str(data.get("username", ""))}

    # ------------------------------------------------------------------ errors

    def _call(self, what: str, call: Any, *, posting: bool = False) -> requests.Response:
        """One request; every failure leaves as one of the connector error types."""
        try:
            return call()
        except tweepy.TooManyRequests as exc:
            reset = exc.reset_time if exc.reset_time else None
            until = (datetime.fromtimestamp(reset, UTC) if reset
                     else self.clock.now() + timedelta(minutes=15))
            raise RateLimited(msg.X_RATE_LIMITED.format(what=what, until=until), until=until) from None
        except tweepy.Unauthorized as exc:
            raise AuthFailed(msg.X_AUTH.format(what=what, status=401, detail=_detail(exc))) from None
        except tweepy.Forbidden as exc:
            detail = _detail(exc)
            lowered = detail.lower()
            if posting and "duplicate" in lowered:
                raise Refused(msg.X_REFUSED.format(detail=detail), reason=RefusalReason.DUPLICATE_TEXT) from None
            if posting and any(m in lowered for m in REPLY_RULE_MARKERS + DM_REFUSED_MARKERS):
                raise Refused(msg.X_REFUSED.format(detail=detail)) from None
            raise AuthFailed(msg.X_AUTH.format(what=what, status=403, detail=detail)) from None
        except tweepy.TwitterServerError as exc:
            raise Transient(msg.X_TRANSIENT.format(what=what, detail=_detail(exc))) from None
        except tweepy.BadRequest as exc:
            if posting:
                raise Refused(msg.X_REFUSED.format(detail=_detail(exc))) from None
            raise BadPayload(msg.X_BAD_PAYLOAD.format(what=what, detail=_detail(exc))) from None
        except tweepy.HTTPException as exc:
            raise Transient(msg.X_TRANSIENT.format(what=what, detail=_detail(exc))) from None
        except requests.Timeout:
            raise Transient(msg.X_TRANSIENT.format(what=what, detail="timed out")) from None
        except requests.ConnectionError:
            raise Transient(msg.X_TRANSIENT.format(what=what, detail="connection failed")) from None
        except requests.RequestException as exc:
            raise Transient(msg.X_TRANSIENT.format(what=what, detail=type(exc).__name__)) from None


def _detail(exc: tweepy.HTTPException) -> str:
    text = "; ".join(str(m) for m in exc.api_messages) or f"HTTP {exc.response.status_code}"
    return redact(text)


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise BadPayload(msg.X_BAD_PAYLOAD.format(what=what, detail="the body is not valid JSON")) from None
    if not isinstance(body, dict):
        raise BadPayload(msg.X_BAD_PAYLOAD.format(what=what, detail="the body is not a JSON object"))
    return body


def _quota(response: requests.Response) -> Quota:
    headers = response.headers
    try:
        return Quota(limit=int(headers["x-rate-limit-limit"]), remaining=int(headers["x-rate-limit-remaining"]),
                     reset_at=datetime.fromtimestamp(int(headers["x-rate-limit-reset"]), UTC))
    except (KeyError, ValueError):
        return Quota()


def _load_cursor(cursor: str) -> dict[str, Any]:
    # since: newest id stored; since_at: its time; token/top/top_at/read/start: a drain in progress
    # (dm: since, and token/top/start while a drain goes on)
    state: dict[str, Any] = {"since": None, "since_at": None, "token": None, "top": None, "top_at": None,
                             "read": 0, "start": None}
    if cursor:
        try:
            loaded = json.loads(cursor)
        except ValueError:
            loaded = {"since": cursor} if cursor.isdigit() else {}  # a bare since_id also works
        if isinstance(loaded, dict):
            state.update({k: loaded.get(k, state[k]) for k in state})
    return state
