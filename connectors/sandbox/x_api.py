"""Fake X API v2: mentions timeline, recent search, posting replies and DMs, rate-limit windows.

Shapes follow X's published v2 responses: `data` / `includes.users` / `meta`
(newest_id, oldest_id, result_count, next_token), problem-JSON error bodies and
the x-rate-limit-* headers.  Default limits are X's Basic tier figures
(docs.x.com "Rate limits"; mentions: 15 requests / 15 min per app, 10 per user,
confirmed in tweepy discussion #2127; recent search: 60 / 15 min per app).

Direct messages: GET /2/dm_events and GET /2/dm_conversations/with/:participant_id/dm_events
(user context only; newest first; max_results 1..100, default 100; `pagination_token` /
`meta.next_token`; fields by `dm_event.fields`, default id, event_type, text; `expansions=sender_id`
puts the senders in `includes.users`; events of the last 30 days), and POST
/2/dm_conversations/with/:participant_id/messages, which we allow only to someone who wrote to the
brand in DM first (our policy, and what X lets a brand count on).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from connectors.sandbox.wire import Answer, Clock, Request, iso_x, parse_time

WINDOW_15_MIN = 15 * 60
# endpoint key -> (requests per window, window seconds); tests may replace entries.
DEFAULT_LIMITS: dict[str, tuple[int, int]] = {
    "mentions": (15, WINDOW_15_MIN),
    "search": (60, WINDOW_15_MIN),
    "user_tweets": (10, WINDOW_15_MIN),
    "create_tweet": (100, 24 * 3600),
    "dm": (15, WINDOW_15_MIN),
    # GET /2/dm_events: 15 requests / 15 min per user, the figure we model (docs.x.com's rate-limit
    # table by tier was not in reach; a test may replace it)
    "dm_events": (15, WINDOW_15_MIN),
    "me": (25, 24 * 3600),
}
MENTIONS_KEPT = 800  # the mentions timeline only reaches this far back (X docs)
SEARCH_WINDOW_S = 7 * 24 * 3600  # recent search covers the last 7 days
REPLY_NOT_ALLOWED = (
    "Reply to this conversation is not allowed because you have not been mentioned or "
    "otherwise engaged by the author of the post you are replying to."
)
_DEFAULT_TWEET_FIELDS = ("id", "text", "edit_history_tweet_ids")
_DEFAULT_DM_FIELDS = ("id", "event_type", "text")
DM_HISTORY_S = 30 * 24 * 3600  # dm_events serves the last 30 days
_DEFAULT_USER_FIELDS = ("id", "name", "username")
_TOKEN_PREFIX = "7140dibdnow9c7btw"


def _problem(status: int, title: str, detail: str, type_: str = "about:blank") -> Answer:
    return Answer(status=status, body={"title": title, "detail": detail, "type": type_, "status": status})


def fault_answer(status: int) -> Answer:
    """X's error bodies for an injected fault."""
    if status == 401:
        return _problem(401, "Unauthorized", "Unauthorized")
    if status == 429:
        return _problem(429, "Too Many Requests", "Too Many Requests")
    if status == 503:
        return _problem(503, "Service Unavailable", "Service Unavailable")
    if status >= 500:
        return Answer(status=status, body={"errors": [{"message": "Internal error", "code": 131}],
                                           "title": "Internal Server Error", "status": status})
    return _problem(status, "Error", "Injected error")


def _token(oldest_id: int) -> str:
    return _TOKEN_PREFIX + _base36(oldest_id)


def _untoken(token: str) -> int | None:
    if not token.startswith(_TOKEN_PREFIX):
        return None
    try:
        return int(token[len(_TOKEN_PREFIX):], 36)
    except ValueError:
        return None


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rem = divmod(number, 36)
        out = digits[rem] + out
    return out or "0"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class XApi:
    """State and request handling of the fake X API."""

    def __init__(self, *, clock: Clock, brand_user_id: str, brand_handle: str) -> None:
        self.clock = clock
        self.brand = {"id": brand_user_id, "username": brand_handle, "name": brand_handle,
                      "public_metrics": {"followers_count": 12000, "following_count": 10,
                                         "tweet_count": 500, "listed_count": 3},
                      "verified": True}
        self.limits = dict(DEFAULT_LIMITS)
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.tweets: dict[int, dict[str, Any]] = {}
            self.users: dict[str, dict[str, Any]] = {self.brand["id"]: dict(self.brand)}
            self.engaged: set[str] = set()  # users who mentioned or replied to the brand
            self.posts: list[dict[str, Any]] = []
            self.dm_events: dict[int, dict[str, Any]] = {}
            self.open_dms: set[str] = set()  # users who accept DMs from anyone (a test sets them)
            self.windows: dict[str, tuple[float, int]] = {}
            self._next_id = 1_790_000_000_000_000_000

    # ------------------------------------------------------------------ control

    def add(self, items: list[dict[str, Any]]) -> list[str]:
        """Store tweets as the control API receives them; returns their ids."""
        ids = []
        with self._lock:
            for item in items:
                tweet = dict(item.get("tweet") or item)
                author = dict(item.get("author") or {})
                ids.append(self._store(tweet, author))
        return ids

    def add_dms(self, items: list[dict[str, Any]]) -> list[str]:
        """Direct messages to the brand: {"text", "sender": {"id", "username", ...}, "created_at"?, "id"?}."""
        ids = []
        with self._lock:
            for item in items:
                sender = dict(item.get("sender") or {})
                sender_id = str(sender.get("id") or f"8{len(self.dm_events):017d}")
                known = self.users.get(sender_id, {})
                user = {"id": sender_id, "username": sender.get("username") or known.get("username")
                        or f"user{sender_id[-6:]}", "name": sender.get("name") or known.get("name") or "X user",
                        "public_metrics": sender.get("public_metrics") or known.get("public_metrics")
                        or {"followers_count": 0}, "verified": bool(sender.get("verified", False))}
                self.users[sender_id] = {**known, **user}
                ids.append(self._store_dm(sender_id=sender_id, recipient_id=self.brand["id"],
                                          text=str(item.get("text", "")), created_at=item.get("created_at"),
                                          event_id=item.get("id")))
        return ids

    def _store_dm(self, *, sender_id: str, recipient_id: str, text: str, created_at: Any = None,
                  event_id: Any = None) -> str:
        now = self.clock.now()
        if event_id is not None:
            number = int(event_id)
            self._next_id = max(self._next_id, number + 1)
        else:
            number = self._next_id + 1_000_000
            self._next_id = number + 1
        low, high = sorted([sender_id, recipient_id], key=int)
        epoch = parse_time(created_at, now)
        self.dm_events[number] = {"id": str(number), "event_type": "MessageCreate", "text": text,
                                  "sender_id": sender_id, "dm_conversation_id": f"{low}-{high}",
                                  "created_at": iso_x(epoch), "_epoch": epoch,
                                  "_participant": recipient_id if sender_id == self.brand["id"] else sender_id}
        return str(number)

    def _store(self, tweet: dict[str, Any], author: dict[str, Any]) -> str:
        now = self.clock.now()
        if "id" in tweet:
            tweet_id = int(tweet["id"])
            self._next_id = max(self._next_id, tweet_id + 1)
        else:
            # Ids we make up leap ahead, so a test that numbers its own tweets 1, 2, 3 after a
            # reply of ours never reuses (and silently overwrites) the reply's id.
            tweet_id = self._next_id + 1_000_000
            self._next_id = tweet_id + 1
        author_id = str(author.get("id") or tweet.get("author_id") or f"9{tweet_id % 10**17:017d}")
        known = self.users.get(author_id, {})
        user = {
            "id": author_id,
            "username": author.get("username") or known.get("username") or f"user{author_id[-6:]}",
            "name": author.get("name") or known.get("name") or author.get("username") or "X user",
            "public_metrics": author.get("public_metrics") or known.get("public_metrics")
            or {"followers_count": 0, "following_count": 0, "tweet_count": 1, "listed_count": 0},
            "verified": bool(author.get("verified", known.get("verified", False))),
        }
        for key, value in author.items():
            user.setdefault(key, value)
        self.users[author_id] = user
        sid = str(tweet_id)
        tweet["id"] = sid
        tweet.setdefault("text", "")
        tweet["author_id"] = author_id
        tweet.setdefault("created_at", iso_x(now))
        tweet.setdefault("conversation_id", sid)
        tweet.setdefault("lang", "en")
        tweet.setdefault("edit_history_tweet_ids", [sid])
        tweet["_epoch"] = parse_time(tweet["created_at"], now)
        self.tweets[tweet_id] = tweet
        if author_id != self.brand["id"] and (
            self._mentions_brand(tweet) or tweet.get("in_reply_to_user_id") == self.brand["id"]
        ):
            self.engaged.add(author_id)
        return sid

    def _mentions_brand(self, tweet: dict[str, Any]) -> bool:
        pattern = rf"(?<![\w@])@{re.escape(self.brand['username'])}\b"
        return re.search(pattern, tweet.get("text", ""), re.IGNORECASE) is not None

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Answer:
        path = request.path
        if not request.headers.get("authorization", "").startswith(("Bearer ", "OAuth ")):
            return _problem(401, "Unauthorized", "Unauthorized")
        with self._lock:
            if request.method == "GET" and re.fullmatch(r"/2/users/[^/]+/mentions", path):
                return self._limited("mentions", lambda: self._mentions(request))
            if request.method == "GET" and re.fullmatch(r"/2/users/[^/]+/tweets", path):
                return self._limited("user_tweets", lambda: self._user_tweets(request))
            if request.method == "GET" and path == "/2/tweets/search/recent":
                return self._limited("search", lambda: self._search(request))
            if request.method == "POST" and path == "/2/tweets":
                return self._limited("create_tweet", lambda: self._create_tweet(request))
            if request.method == "GET" and path == "/2/users/me":
                return self._limited("me", lambda: self._me(request))
            match = re.fullmatch(r"/2/dm_conversations/with/([^/]+)/messages", path)
            if request.method == "POST" and match:
                return self._limited("dm", lambda: self._dm(request, match.group(1)))
            if request.method == "GET" and path == "/2/dm_events":
                return self._limited("dm_events", lambda: self._dm_list(request, participant=None))
            match = re.fullmatch(r"/2/dm_conversations/with/([^/]+)/dm_events", path)
            if request.method == "GET" and match:
                return self._limited("dm_events", lambda: self._dm_list(request, participant=match.group(1)))
        return _problem(404, "Not Found Error", f"Sorry, that page does not exist: {path}",
                        "https://api.twitter.com/2/problems/resource-not-found")

    def _limited(self, key: str, handler: Any) -> Answer:
        limit, window_s = self.limits[key]
        now = self.clock.now()
        start, used = self.windows.get(key, (now, 0))
        if now >= start + window_s:
            start, used = now, 0
        reset = int(start + window_s)
        if used >= limit:
            answer = fault_answer(429)
            remaining = 0
        else:
            used += 1
            self.windows[key] = (start, used)
            answer = handler()
            remaining = limit - used
        answer.headers.update({"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(remaining),
                               "x-rate-limit-reset": str(reset)})
        return answer

    # ------------------------------------------------------------------ reads

    def _mentions(self, request: Request) -> Answer:
        user_id = request.path.split("/")[3]
        if user_id != self.brand["id"]:
            return Answer(status=200, body={"meta": {"result_count": 0}})
        mentions = sorted((t for t in self.tweets.values()
                           if t["author_id"] != self.brand["id"] and self._mentions_brand(t)),
                          key=lambda t: int(t["id"]), reverse=True)[:MENTIONS_KEPT]
        return self._page(request, mentions, min_results=5, default_results=10)

    def _user_tweets(self, request: Request) -> Answer:
        """GET /2/users/:id/tweets: what the account itself posted, newest first."""
        user_id = request.path.split("/")[3]
        own = sorted((t for t in self.tweets.values() if t["author_id"] == user_id),
                     key=lambda t: int(t["id"]), reverse=True)[:3200]
        return self._page(request, own, min_results=5, default_results=10)

    def _search(self, request: Request) -> Answer:
        query = request.query.get("query", "")
        try:
            matcher = QueryMatcher(query, users=self.users)
        except ValueError as exc:
            return Answer(status=400, body={
                "errors": [{"parameters": {"query": [query]}, "message": str(exc)}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request"})
        oldest_allowed = self.clock.now() - SEARCH_WINDOW_S
        hits = sorted((t for t in self.tweets.values() if t["_epoch"] >= oldest_allowed and matcher.match(t)),
                      key=lambda t: int(t["id"]), reverse=True)
        return self._page(request, hits, min_results=10, default_results=10)

    def _page(self, request: Request, tweets: list[dict[str, Any]], *, min_results: int,
              default_results: int) -> Answer:
        query = request.query
        try:
            max_results = int(query.get("max_results", default_results))
        except ValueError:
            max_results = -1
        if not min_results <= max_results <= 100:
            return Answer(status=400, body={
                "errors": [{"parameters": {"max_results": [query.get("max_results")]},
                            "message": f"The `max_results` query parameter value [{query.get('max_results')}] "
                                       f"is not between {min_results} and 100"}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request"})
        since_id = int(query["since_id"]) if query.get("since_id") else None
        until_id = int(query["until_id"]) if query.get("until_id") else None
        token = query.get("pagination_token") or query.get("next_token")
        before = _untoken(token) if token else None
        start = parse_time(query.get("start_time"), 0.0)
        end = parse_time(query.get("end_time"), float("inf"))
        selected = [t for t in tweets
                    if start <= t["_epoch"] <= end
                    and (since_id is None or int(t["id"]) > since_id)
                    and (until_id is None or int(t["id"]) < until_id)
                    and (before is None or int(t["id"]) < before)]
        page, rest = selected[:max_results], selected[max_results:]
        if not page:
            return Answer(body={"meta": {"result_count": 0}})
        tweet_fields = set(_DEFAULT_TWEET_FIELDS) | set(_csv(query.get("tweet.fields", "")))
        user_fields = set(_DEFAULT_USER_FIELDS) | set(_csv(query.get("user.fields", "")))
        data = [{k: v for k, v in t.items() if k in tweet_fields} for t in page]
        body: dict[str, Any] = {"data": data}
        if "author_id" in _csv(query.get("expansions", "")):
            seen: dict[str, dict[str, Any]] = {}
            for tweet in page:
                user = self.users[tweet["author_id"]]
                seen.setdefault(user["id"], {k: v for k, v in user.items() if k in user_fields})
            body["includes"] = {"users": list(seen.values())}
        meta: dict[str, Any] = {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"],
                                "result_count": len(page)}
        if rest:
            meta["next_token"] = _token(int(page[-1]["id"]))
        body["meta"] = meta
        return Answer(body=body, served=[t["id"] for t in page])

    def _dm_list(self, request: Request, *, participant: str | None) -> Answer:
        if not request.headers.get("authorization", "").startswith("OAuth "):
            return _unsupported_auth()
        query = request.query
        try:
            max_results = int(query.get("max_results", 100))
        except ValueError:
            max_results = -1
        if not 1 <= max_results <= 100:
            return Answer(status=400, body={
                "errors": [{"parameters": {"max_results": [query.get("max_results")]},
                            "message": f"The `max_results` query parameter value [{query.get('max_results')}] "
                                       "is not between 1 and 100"}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request"})
        types = set(_csv(query.get("event_types", ""))) or {"MessageCreate", "ParticipantsJoin", "ParticipantsLeave"}
        token = query.get("pagination_token")
        before = _untoken(token) if token else None
        oldest = self.clock.now() - DM_HISTORY_S
        events = sorted((e for e in self.dm_events.values()
                         if e["event_type"] in types and e["_epoch"] >= oldest
                         and (participant is None or e["_participant"] == participant)
                         and (before is None or int(e["id"]) < before)),
                        key=lambda e: int(e["id"]), reverse=True)
        page, rest = events[:max_results], events[max_results:]
        if not page:
            return Answer(body={"meta": {"result_count": 0}})
        fields = set(_DEFAULT_DM_FIELDS) | set(_csv(query.get("dm_event.fields", "")))
        body: dict[str, Any] = {"data": [{k: v for k, v in e.items() if k in fields} for e in page]}
        if "sender_id" in _csv(query.get("expansions", "")):
            user_fields = set(_DEFAULT_USER_FIELDS) | set(_csv(query.get("user.fields", "")))
            senders = dict.fromkeys(e["sender_id"] for e in page)
            body["includes"] = {"users": [{k: v for k, v in self.users[u].items() if k in user_fields}
                                          for u in senders if u in self.users]}
        meta: dict[str, Any] = {"result_count": len(page)}
        if rest:
            meta["next_token"] = _token(int(page[-1]["id"]))
        body["meta"] = meta
        return Answer(body=body, served=[e["id"] for e in page])

    def _me(self, request: Request) -> Answer:
        if not request.headers.get("authorization", "").startswith("OAuth "):
            return _unsupported_auth()
        return Answer(body={"data": {k: self.brand[k] for k in _DEFAULT_USER_FIELDS}})

    # ------------------------------------------------------------------ writes

    def _create_tweet(self, request: Request) -> Answer:
        if not request.headers.get("authorization", "").startswith("OAuth "):
            return _unsupported_auth()
        body = request.json()
        text = str(body.get("text", ""))
        if len(text) > 280:
            return _problem(400, "Invalid Request", "Your Tweet text is too long.",
                            "https://api.twitter.com/2/problems/invalid-request")
        if any(post["text"] == text and post["kind"] == "reply" for post in self.posts):
            return _problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        reply_to = str((body.get("reply") or {}).get("in_reply_to_tweet_id", ""))
        tweet: dict[str, Any] = {"text": text}
        if reply_to:
            target = self.tweets.get(int(reply_to)) if reply_to.isdigit() else None
            if target is None:
                return Answer(status=400, body={
                    "errors": [{"parameters": {"reply.in_reply_to_tweet_id": [reply_to]},
                                "message": "The reply.in_reply_to_tweet_id field must reference a "
                                           "Post that is not deleted and is visible to you."}],
                    "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request"})
            allowed = (target["author_id"] == self.brand["id"] or self._mentions_brand(target)
                       or target["author_id"] in self.engaged)
            if not allowed:
                return _problem(403, "Forbidden", REPLY_NOT_ALLOWED)
            tweet.update({"conversation_id": target["conversation_id"],
                          "in_reply_to_user_id": target["author_id"],
                          "referenced_tweets": [{"type": "replied_to", "id": target["id"]}]})
        tweet_id = self._store(tweet, {"id": self.brand["id"]})
        self.posts.append({"kind": "reply" if reply_to else "post", "in_reply_to": reply_to, "text": text,
                           "id": tweet_id, "at": iso_x(self.clock.now()),
                           "direct_message_deep_link": str(body.get("direct_message_deep_link") or "")})
        return Answer(status=201, body={"data": {"id": tweet_id, "text": text,
                                                  "edit_history_tweet_ids": [tweet_id]}})

    def _dm(self, request: Request, participant_id: str) -> Answer:
        if not request.headers.get("authorization", "").startswith("OAuth "):
            return _unsupported_auth()
        text = str(request.json().get("text", ""))
        wrote_first = any(e["sender_id"] == participant_id for e in self.dm_events.values())
        if not wrote_first and participant_id not in self.open_dms:
            return _problem(403, "Forbidden", "You cannot send messages to this user.")
        event_id = self._store_dm(sender_id=self.brand["id"], recipient_id=participant_id, text=text)
        low, high = sorted([participant_id, self.brand["id"]], key=int)
        self.posts.append({"kind": "dm", "recipient": participant_id, "text": text, "id": event_id,
                           "at": iso_x(self.clock.now())})
        return Answer(status=201, body={"data": {"dm_conversation_id": f"{low}-{high}", "dm_event_id": event_id}})


def _unsupported_auth() -> Answer:
    return _problem(403, "Unsupported Authentication",
                    "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  "
                    "Supported authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
                    "https://api.twitter.com/2/problems/unsupported-authentication")


# ---------------------------------------------------------------------- search query subset

_TOKEN_RE = re.compile(r'\s*(-?"[^"]*"|\(|\)|-?[^\s()"]+)')


class QueryMatcher:
    """A small subset of X search syntax: phrases, words (AND), OR, groups, negation,
    from:, @handle, conversation_id:, is:retweet / is:reply / is:quote, lang:."""

    def __init__(self, query: str, *, users: dict[str, dict[str, Any]]) -> None:
        self.users = users
        self.tokens = [m.group(1) for m in _TOKEN_RE.finditer(query)]
        if not self.tokens:
            raise ValueError("query must not be empty")
        self.pos = 0
        self.tree = self._expr()
        if self.pos != len(self.tokens):
            raise ValueError(f"There were errors processing your request: unexpected `{self.tokens[self.pos]}`")

    def _expr(self) -> Any:
        terms = [self._and()]
        while self.pos < len(self.tokens) and self.tokens[self.pos] == "OR":
            self.pos += 1
            terms.append(self._and())
        return ("or", terms)

    def _and(self) -> Any:
        terms = []
        while self.pos < len(self.tokens) and self.tokens[self.pos] not in ("OR", ")"):
            terms.append(self._term())
        if not terms:
            raise ValueError("There were errors processing your request: empty clause")
        return ("and", terms)

    def _term(self) -> Any:
        token = self.tokens[self.pos]
        self.pos += 1
        if token == "(":
            inner = self._expr()
            if self.pos >= len(self.tokens) or self.tokens[self.pos] != ")":
                raise ValueError("There were errors processing your request: missing `)`")
            self.pos += 1
            return inner
        if token.startswith("-") and len(token) > 1:
            return ("not", ("atom", token[1:]))
        return ("atom", token)

    def match(self, tweet: dict[str, Any]) -> bool:
        return self._eval(self.tree, tweet)

    def _eval(self, node: Any, tweet: dict[str, Any]) -> bool:
        kind = node[0]
        if kind == "or":
            return any(self._eval(n, tweet) for n in node[1])
        if kind == "and":
            return all(self._eval(n, tweet) for n in node[1])
        if kind == "not":
            return not self._eval(node[1], tweet)
        return self._atom(node[1], tweet)

    def _atom(self, atom: str, tweet: dict[str, Any]) -> bool:
        text = tweet.get("text", "").lower()
        refs = {ref.get("type") for ref in tweet.get("referenced_tweets") or []}
        lowered = atom.lower()
        if atom.startswith('"'):
            return atom.strip('"').lower() in text
        if lowered.startswith("from:"):
            return self.users.get(tweet["author_id"], {}).get("username", "").lower() == lowered[5:].lstrip("@")
        if lowered.startswith("conversation_id:"):
            return tweet.get("conversation_id") == atom.split(":", 1)[1]
        if lowered.startswith("lang:"):
            return tweet.get("lang", "") == lowered[5:]
        if lowered == "is:retweet":
            return "retweeted" in refs or text.startswith("rt @")
        if lowered == "is:reply":
            return "replied_to" in refs
        if lowered == "is:quote":
            return "quoted" in refs
        if lowered.startswith("@"):
            return re.search(rf"(?<![\w@]){re.escape(lowered)}\b", text) is not None
        if lowered[:1] in "#$":
            return re.search(rf"{re.escape(lowered)}\b", text) is not None
        return re.search(rf"(?<!\w){re.escape(lowered)}(?!\w)", text) is not None
