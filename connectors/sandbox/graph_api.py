"""Fake Graph API (v21.0 paths): Page feed, comments, Messenger conversations, replies, private replies.

Follows Graph's shapes: `{"data": [...], "paging": {"cursors": {"before", "after"}, "next"}}`,
`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}` bodies and the
X-Business-Use-Case-Usage header.  Private replies: one per comment, within 7 days of the
comment (Messenger Platform "Private Replies" limitations); Messenger sends only within 24 h of
the person's last message (error code 10, subcode 2018278).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import zlib
from typing import Any
from urllib.parse import urlencode

from connectors.sandbox.webhooks import WebhookSender
from connectors.sandbox.wire import Answer, Clock, Request, iso_graph, parse_time

PRIVATE_REPLY_WINDOW_S = 7 * 24 * 3600
MESSAGING_WINDOW_S = 24 * 3600
HUMAN_AGENT_WINDOW_S = 7 * 24 * 3600  # messaging_type=MESSAGE_TAG, tag=HUMAN_AGENT: a person's answer
PSID_BASE = 24_000_000_000_000_000  # Messenger ids (PSIDs) are not the ids comments carry
BUC_WINDOW_S = 3600
_DEFAULT_FIELDS = {
    "feed": ("id", "message", "created_time"),
    "comments": ("id", "message", "from", "created_time"),
    "conversations": ("id", "link", "updated_time"),
    "messages": ("id", "created_time"),
}


def graph_error(message: str, *, code: int, type_: str = "OAuthException", subcode: int | None = None,
                status: int = 400, transient: bool | None = None) -> Answer:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(15)
    return Answer(status=status, body={"error": error})


def fault_answer(status: int) -> Answer:
    """Graph's error bodies for an injected fault."""
    if status == 401:
        return graph_error("Error validating access token: Session has expired on Tuesday, 01-Apr-25 "
                           "10:00:00 PDT. The current time is Tuesday, 01-Apr-25 11:00:00 PDT.",
                           code=190, subcode=463)
    if status == 429:
        answer = graph_error("(#80001) There have been too many calls to this Page account. Wait a bit and "
                             "try again. For more info, please refer to "
                             "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
                             code=80001)
        answer.headers["X-Business-Use-Case-Usage"] = "__BUC_FULL__"
        return answer
    if status == 503:
        return graph_error("(#2) Service temporarily unavailable", code=2, status=503, transient=True)
    return graph_error("An unknown error has occurred.", code=1, status=status, transient=True)


def _enc(key: tuple[float, int]) -> str:
    return base64.b64encode(f"{key[0]:.3f}:{key[1]}".encode()).decode()


def _dec(cursor: str) -> tuple[float, int] | None:
    try:
        epoch, seq = base64.b64decode(cursor.encode()).decode().split(":")
        return float(epoch), int(seq)
    except (ValueError, UnicodeDecodeError):
        return None


class GraphApi:
    """State and request handling of the fake Graph API."""

    def __init__(self, *, clock: Clock, page_id: str, page_name: str, base_url: str = "") -> None:
        self.clock = clock
        self.page = {"id": page_id, "name": page_name}
        self.base_url = base_url
        # BUC: call_count reaches 100 % at this many calls in an hour.  Pages allow 4800 x engaged
        # users per 24 h (Graph "Rate limiting"); one busy hour of a small Page is our default.
        self.calls_per_hour = 4800
        # Switchable ways Graph shows an item later than its created_time says (issue #21):
        # a share of comments becomes visible `late_by_s` after its created_time (released from
        # moderation, unhidden), waking its post or not; and a Messenger message lands in the same
        # second as the last read of its conversation.
        self.late_comments = 0.0
        self.late_by_s = 600.0
        self.late_wakes_post = True
        self.same_second_messages = False
        self._late_due = 0.0
        self.webhooks = WebhookSender()  # Page webhooks to the daemon, once configured with its URL
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.posts: dict[str, dict[str, Any]] = {}
            self.comments: dict[str, dict[str, Any]] = {}
            self.conversations: dict[str, dict[str, Any]] = {}
            self.messages: dict[str, dict[str, Any]] = {}
            self.sent: list[dict[str, Any]] = []
            self.calls: list[float] = []
            self._seq = 0
            self._late_due = 0.0

    def psid(self, person_id: str) -> str:
        """The Messenger id (PSID) of the person who commented as `person_id`."""
        number = int(person_id) if person_id.isdigit() else zlib.crc32(person_id.encode())
        return str(PSID_BASE + number % PSID_BASE)

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    # ------------------------------------------------------------------ control

    def add_post(self, *, message: str = "", post_id: str = "", created_time: Any = None) -> str:
        with self._lock:
            now = self.clock.now()
            seq = self._next()
            post_id = post_id or f"{self.page['id']}_{100000000000000 + seq}"
            epoch = parse_time(created_time, now)
            self.posts[post_id] = {"id": post_id, "message": message or f"News from {self.page['name']}",
                                   "created_time": iso_graph(epoch), "from": dict(self.page),
                                   "_epoch": epoch, "_updated": epoch, "_seq": seq}
            return post_id

    def add_comments(self, items: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self._lock:
            for item in items:
                ids.append(self._add_comment(dict(item)))
        return ids

    def _add_comment(self, item: dict[str, Any]) -> str:
        now = self.clock.now()
        parent = item.get("parent")
        parent_id = parent.get("id") if isinstance(parent, dict) else parent
        post_id = item.get("post_id") or (self.comments[parent_id]["post_id"] if parent_id in self.comments else "")
        if not post_id and self.posts:
            post_id = max(self.posts.values(), key=_key)["id"]  # no post named: the Page's newest post
        if not post_id or post_id not in self.posts:
            post_id = self.add_post(post_id=post_id or "")
        seq = self._next()
        comment_id = str(item.get("id") or f"{post_id.split('_')[-1]}_{200000000000000 + seq}")
        epoch = parse_time(item.get("created_time"), now)
        late = self._late_share_due() and not parent_id
        if late:
            epoch -= self.late_by_s  # visible only now, but dated when it was written
        author = item.get("from") or {"id": f"7{seq:015d}", "name": "Facebook user"}
        comment = {"id": comment_id, "message": item.get("message", ""), "from": dict(author),
                   "created_time": iso_graph(epoch), "post_id": post_id, "_epoch": epoch, "_seq": seq,
                   "permalink_url": f"https://www.facebook.com/{post_id}?comment_id={comment_id}"}
        if parent_id:
            comment["parent"] = {"id": parent_id}
        self.comments[comment_id] = comment
        post = self.posts[post_id]
        # Graph's updated_time is when the activity happened: a backdated comment still wakes its post
        # (unless the switch says that a late-visible one does not)
        post["_updated"] = max(post["_updated"], epoch, now if not late or self.late_wakes_post else epoch)
        self.webhooks.send({"object": "page", "entry": [{"id": self.page["id"], "time": int(now), "changes": [{
            "field": "feed", "value": {
                "from": dict(author), "post": {"id": post_id, "status_type": "added_photos", "is_published": True},
                "message": comment["message"], "post_id": post_id, "comment_id": comment_id,
                "created_time": int(epoch), "item": "comment", "parent_id": parent_id or post_id,
                "verb": "add"}}]}]}, event_id=comment_id)
        return comment_id

    def _late_share_due(self) -> bool:
        """Every 1/late_comments-th comment is a late-visible one (deterministic, so runs repeat)."""
        if self.late_comments <= 0:
            return False
        self._late_due += self.late_comments
        if self._late_due >= 1.0:
            self._late_due -= 1.0
            return True
        return False

    def add_messages(self, items: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self._lock:
            for item in items:
                author = item.get("from") or {"id": f"6{self._seq:015d}", "name": "Messenger user"}
                conv = self._conversation(str(item.get("conversation_id") or ""), author)
                ids.append(self._add_message(conv, author=author, text=item.get("message", ""),
                                             created_time=item.get("created_time"), message_id=item.get("id")))
        return ids

    def _conversation(self, conversation_id: str, person: dict[str, Any]) -> dict[str, Any]:
        if conversation_id in self.conversations:
            return self.conversations[conversation_id]
        for conv in self.conversations.values():
            if conv["person"]["id"] == person["id"] and not conversation_id:
                return conv
        conversation_id = conversation_id or f"t_{300000000000000 + self._next()}"
        conv = {"id": conversation_id, "person": dict(person), "_updated": 0.0, "_last_customer": None}
        self.conversations[conversation_id] = conv
        return conv

    def _add_message(self, conv: dict[str, Any], *, author: dict[str, Any], text: str, created_time: Any = None,
                     message_id: Any = None) -> str:
        now = self.clock.now()
        epoch = parse_time(created_time, now)
        read_at = conv.get("_read_at")
        same_second = self.same_second_messages and read_at is not None and 0 <= now - read_at < 60
        if same_second:
            epoch = now = read_at  # it lands in the second the conversation was last read
        seq = self._next()
        message_id = str(message_id or f"m_{secrets.token_urlsafe(18)}")
        to = self.page if author["id"] != self.page["id"] else conv["person"]
        self.messages[message_id] = {"id": message_id, "message": text, "from": dict(author),
                                     "to": {"data": [dict(to)]}, "created_time": iso_graph(epoch),
                                     "conversation_id": conv["id"], "_epoch": epoch, "_seq": seq}
        conv["_updated"] = max(conv["_updated"], epoch, now)
        if author["id"] != self.page["id"]:
            conv["_last_customer"] = max(conv["_last_customer"] or 0.0, epoch)
            self.webhooks.send({"object": "page", "entry": [{"id": self.page["id"], "time": int(now * 1000),
                                "messaging": [{"sender": {"id": author["id"]}, "recipient": {"id": self.page["id"]},
                                               "timestamp": int(epoch * 1000),
                                               "message": {"mid": message_id, "text": text}}]}]},
                               event_id=message_id)
        return message_id

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Answer:
        with self._lock:
            answer = self._route(request)
            answer.headers.setdefault("X-Business-Use-Case-Usage", "")
            answer.headers["X-Business-Use-Case-Usage"] = self._usage(
                full=answer.headers["X-Business-Use-Case-Usage"] == "__BUC_FULL__")
            return answer

    def _usage(self, *, full: bool = False) -> str:
        now = self.clock.now()
        self.calls = [t for t in self.calls if t > now - BUC_WINDOW_S] + [now]
        pct = 100 if full else min(100, len(self.calls) * 100 // max(1, self.calls_per_hour))
        regain = 0
        if pct >= 100:
            regain = max(1, int((self.calls[0] + BUC_WINDOW_S - now) // 60)) if not full else 5
        return json.dumps({self.page["id"]: [{"type": "pages", "call_count": pct, "total_cputime": max(1, pct // 4),
                                              "total_time": max(1, pct // 3),
                                              "estimated_time_to_regain_access": regain}]})

    def _route(self, request: Request) -> Answer:
        match = re.fullmatch(r"/v\d+\.\d+/([^/]+)(?:/([^/]+))?/?", request.path)
        if not match:
            return graph_error("Unknown path components: " + request.path, code=2500)
        node, edge = match.group(1), match.group(2) or ""
        params = dict(request.query)
        if request.method == "POST":
            params.update(request.form_or_json())
        if not params.get("access_token") and "authorization" not in request.headers:
            return graph_error("An active access token must be used to query information about the current user.",
                               code=2500)
        if len(self.calls) + 1 > self.calls_per_hour:
            return fault_answer(429)
        if request.method == "GET":
            if node == self.page["id"] and edge == "feed":
                return self._list(sorted(self.posts.values(), key=_key, reverse=True), "feed", params, request.path)
            if node == self.page["id"] and edge == "conversations":
                convs = [c for c in self.conversations.values()
                         if not params.get("user_id") or c["person"]["id"] == str(params["user_id"])]
                # ordered by the very key the cursors carry (the millisecond, then the id): sorted by the
                # exact time instead, two conversations in one millisecond could swap and paging skip one
                views = sorted((self._conv_view(c) for c in convs), key=_key, reverse=True)
                return self._list(views, "conversations", params, request.path)
            if edge == "comments" and (node in self.posts or node in self.comments):
                return self._list(self._comments_of(node, params), "comments", params, request.path)
            if edge == "messages" and node in self.conversations:
                self.conversations[node]["_read_at"] = self.clock.now()
                msgs = sorted((m for m in self.messages.values() if m["conversation_id"] == node), key=_key,
                              reverse=True)
                return self._list(msgs, "messages", params, request.path)
            if not edge and node == self.page["id"]:
                return Answer(body=dict(self.page))
            if not edge and node in {**self.posts, **self.comments, **self.messages}:
                obj = {**self.posts, **self.comments, **self.messages}[node]
                return Answer(body=_public(obj))
        if request.method == "POST":
            if edge == "comments" and node in self.comments:
                return self._reply_comment(node, str(params.get("message", "")))
            if edge == "messages" and node == self.page["id"]:
                return self._send(params)
        return graph_error(f"Unsupported {request.method.lower()} request. Object with ID '{node}' does not exist, "
                           "cannot be loaded due to missing permissions, or does not support this operation.",
                           code=100, subcode=33, type_="GraphMethodException")

    def _conv_view(self, conv: dict[str, Any]) -> dict[str, Any]:
        return {"id": conv["id"], "updated_time": iso_graph(conv["_updated"]),
                "link": f"/{self.page['id']}/inbox/{conv['id']}",
                "participants": {"data": [dict(conv["person"]), dict(self.page)]},
                # a unique tie-breaker, or paging would skip conversations active in the same instant
                "_epoch": conv["_updated"], "_seq": int("".join(c for c in conv["id"] if c.isdigit()) or 0)}

    def _comments_of(self, node: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if node in self.comments:
            found = [c for c in self.comments.values() if c.get("parent", {}).get("id") == node]
        elif params.get("filter") == "stream":
            found = [c for c in self.comments.values() if c["post_id"] == node]
        else:
            found = [c for c in self.comments.values() if c["post_id"] == node and "parent" not in c]
        return sorted(found, key=_key, reverse=params.get("order") == "reverse_chronological")

    def _list(self, items: list[dict[str, Any]], edge: str, params: dict[str, Any], path: str) -> Answer:
        """Cursor paging over items already in the edge's order."""
        try:
            limit = max(1, min(100, int(params.get("limit", 25))))
        except ValueError:
            return graph_error("(#100) The parameter limit must be an integer", code=100)
        if params.get("since"):
            items = [i for i in items if i["_epoch"] >= parse_time(params["since"], 0)]
        if params.get("until"):
            items = [i for i in items if i["_epoch"] <= parse_time(params["until"], 0)]
        keys = [_key(i) for i in items]
        descending = len(keys) > 1 and keys[0] > keys[-1]
        start, end = 0, len(items)
        if params.get("after"):
            pivot = _dec(str(params["after"]))
            if pivot is None:
                return graph_error("(#100) Invalid cursor", code=100)
            start = next((n for n, k in enumerate(keys) if (k < pivot if descending else k > pivot)), len(items))
            end = min(len(items), start + limit)
        elif params.get("before"):
            pivot = _dec(str(params["before"]))
            if pivot is None:
                return graph_error("(#100) Invalid cursor", code=100)
            end = next((n for n, k in enumerate(keys) if (k <= pivot if descending else k >= pivot)), len(items))
            start = max(0, end - limit)
        else:
            end = min(len(items), limit)
        page = items[start:end]
        fields = _fields(params.get("fields"), edge)
        body: dict[str, Any] = {"data": [_public(i, fields) for i in page]}
        if page:
            paging: dict[str, Any] = {"cursors": {"before": _enc(_key(page[0])), "after": _enc(_key(page[-1]))}}
            base = {k: v for k, v in params.items() if k not in ("after", "before", "access_token")}
            if end < len(items):
                paging["next"] = self._link(path, {**base, "after": paging["cursors"]["after"]})
            if start > 0:
                paging["previous"] = self._link(path, {**base, "before": paging["cursors"]["before"]})
            body["paging"] = paging
        served = [i["id"] for i in page] if edge in ("comments", "messages") else []
        return Answer(body=body, served=served)

    def _link(self, path: str, params: dict[str, Any]) -> str:
        # Graph's paging links carry the token; ours deliberately do not, so no link can leak it.
        return f"{self.base_url}{path}?{urlencode(params)}"

    # ------------------------------------------------------------------ writes

    def _reply_comment(self, comment_id: str, message: str) -> Answer:
        if not message:
            return graph_error("(#100) The parameter message is required", code=100)
        new_id = self._add_comment({"message": message, "from": dict(self.page), "parent": {"id": comment_id},
                                    "post_id": self.comments[comment_id]["post_id"]})
        self.sent.append({"kind": "comment_reply", "in_reply_to": comment_id, "text": message, "id": new_id,
                          "at": iso_graph(self.clock.now())})
        return Answer(body={"id": new_id})

    def _send(self, params: dict[str, Any]) -> Answer:
        recipient = _json_param(params.get("recipient"))
        message = _json_param(params.get("message"))
        text = str(message.get("text", "")) if isinstance(message, dict) else ""
        if not isinstance(recipient, dict) or not text:
            return graph_error("(#100) param recipient and message[text] are required", code=100)
        now = self.clock.now()
        if recipient.get("comment_id"):
            comment = self.comments.get(str(recipient["comment_id"]))
            if comment is None:
                return graph_error("(#100) No matching comment for the given comment_id", code=100)
            if comment.get("_private_replied"):
                return graph_error("(#10900) Activity already replied to", code=10900)
            if now - comment["_epoch"] > PRIVATE_REPLY_WINDOW_S:
                return graph_error("(#10903) This activity can't be replied to: it was created more than "
                                   "7 days ago", code=10903)
            comment["_private_replied"] = True
            # The person is someone else's id in Messenger (a page-scoped id, PSID): Graph answers with it.
            psid = self.psid(str(comment["from"]["id"]))
            conv = self._conversation("", {**comment["from"], "id": psid})
            message_id = self._add_message(conv, author=self.page, text=text)
            self.sent.append({"kind": "private_reply", "in_reply_to": comment["id"],
                              "recipient": psid, "text": text, "id": message_id,
                              "at": iso_graph(now)})
            return Answer(body={"recipient_id": psid, "message_id": message_id})
        person_id = str(recipient.get("id", ""))
        conv = next((c for c in self.conversations.values() if c["person"]["id"] == person_id), None)
        human_agent = params.get("messaging_type") == "MESSAGE_TAG" and params.get("tag") == "HUMAN_AGENT"
        window = HUMAN_AGENT_WINDOW_S if human_agent else MESSAGING_WINDOW_S
        if conv is None or conv["_last_customer"] is None or now - conv["_last_customer"] > window:
            return graph_error("(#10) This message is sent outside of allowed window. Learn more about the new "
                               "policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
                               code=10, subcode=2018278)
        message_id = self._add_message(conv, author=self.page, text=text)
        self.sent.append({"kind": "messenger", "recipient": person_id, "text": text, "id": message_id,
                          "at": iso_graph(now), **({"tag": "HUMAN_AGENT"} if human_agent else {})})
        return Answer(body={"recipient_id": person_id, "message_id": message_id})


def _key(item: dict[str, Any]) -> tuple[float, int]:
    return (round(item["_epoch"], 3), item["_seq"])


def _fields(value: Any, edge: str) -> set[str]:
    if not value:
        return set(_DEFAULT_FIELDS[edge])
    return {part.split("{")[0].strip() for part in str(value).split(",")} | {"id"}


def _public(item: dict[str, Any], fields: set[str] | None = None) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if not k.startswith("_") and k not in ("post_id", "conversation_id")}
    if "_updated" in item:
        out["updated_time"] = iso_graph(item["_updated"])
    if fields is not None:
        out = {k: v for k, v in out.items() if k in fields}
    return out


def _json_param(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value
