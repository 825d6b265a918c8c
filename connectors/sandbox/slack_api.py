"""Fake Slack Web API: the methods our notifier calls, with Slack's `ok`/`error` bodies.

Slack answers HTTP 200 with {"ok": false, "error": ...} for most failures, and HTTP 429 with a
Retry-After header when a channel is posted to faster than about one message per second
(Slack "Rate limits": chat.postMessage is special-cased at 1 message/s per channel, short bursts allowed).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from connectors.sandbox import block_kit
from connectors.sandbox.wire import Answer, Clock, Request

# The workspace's channels (ids are the names, so recorded messages read easily); any channel
# posted to exists too.
SANDBOX_CHANNELS = ("cs-alerts", "cs-escalations", "cs-ops", "cs-vip", "cs-weekly", "cs-digest")
# Slack: a trigger_id opens one modal, and only within three seconds of the interaction; views.open
# answers invalid_trigger_id, exchanged_trigger_id (used before) or expired_trigger_id
# (docs.slack.dev/reference/methods/views.open).
TRIGGER_LIFETIME_S = 3.0


def fault_answer(status: int) -> Answer:
    """Slack's answers for an injected fault."""
    if status == 401:
        return Answer(body={"ok": False, "error": "invalid_auth"})
    if status == 429:
        return Answer(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "30"})
    return Answer(status=status, body=f"<html><body>{status} Slack is having trouble</body></html>".encode(),
                  headers={"Content-Type": "text/html"})


def _parse(value: Any) -> Any:
    """Form bodies carry blocks / metadata / files as JSON strings."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _invalid_blocks(args: dict[str, Any]) -> Answer | None:
    """Slack refuses blocks over the Block Kit limits with `invalid_blocks` and posts nothing."""
    if not args.get("blocks"):
        return None
    found = block_kit.problems(args["blocks"])
    return Answer(body={"ok": False, "error": "invalid_blocks", "errors": found}) if found else None


class SlackApi:
    """State and request handling of the fake Slack Web API."""

    def __init__(self, *, clock: Clock, base_url: str = "") -> None:
        self.clock = clock
        self.base_url = base_url
        self.burst = 20  # token bucket per channel: burst, then `refill_per_s` messages a second
        self.refill_per_s = 1.0
        self._bearer = ""  # the Authorization header of the request being handled
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.log: list[dict[str, Any]] = []  # every post / update / ephemeral, in order
            self.messages: dict[tuple[str, str], dict[str, Any]] = {}
            self.views: list[dict[str, Any]] = []
            self.triggers: dict[str, dict[str, Any]] = {}  # trigger_id -> who, where, when (monotonic)
            self.modals: dict[str, dict[str, Any]] = {}  # view id -> the open modal (views.open), by user
            self.files: dict[str, dict[str, Any]] = {}
            self.buckets: dict[str, tuple[float, float]] = {}
            self._seq = 0
            self.usergroups: dict[str, list[str]] = {}  # user group id (S...) -> member user ids
            self.not_member: set[str] = set()  # channels the bot has not been invited to

    def _ts(self) -> str:
        self._seq += 1
        return f"{int(self.clock.now())}.{self._seq:06d}"

    def handle(self, request: Request) -> Answer:
        with self._lock:
            if request.path.startswith("/_upload/"):
                return self._upload(request)
            method = request.path.removeprefix("/api/")
            args = {k: _parse(v) for k, v in {**request.query, **request.form_or_json()}.items()}
            if not request.headers.get("authorization", "").startswith("Bearer ") and "token" not in args:
                return Answer(body={"ok": False, "error": "not_authed"})
            self._bearer = request.headers.get("authorization", "")
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                return Answer(body={"ok": False, "error": "unknown_method", "req_method": method})
            return handler(args)

    # ------------------------------------------------------------------ methods

    def _m_auth_test(self, args: dict[str, Any]) -> Answer:
        return Answer(body={"ok": True, "url": "https://nordlys.slack.com/", "team": "Nordlys",
                            "user": "mention-monitor", "team_id": "T0SANDBOX1", "user_id": "U0SANDBOX1",
                            "bot_id": "B0SANDBOX1", "is_enterprise_install": False})

    def _take_token(self, channel: str) -> float:
        """0 when a message may go now, else the seconds to wait (Retry-After)."""
        now = self.clock.elapsed()
        tokens, stamp = self.buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.refill_per_s)
        if tokens < 1:
            self.buckets[channel] = (tokens, now)
            return (1 - tokens) / self.refill_per_s
        self.buckets[channel] = (tokens - 1, now)
        return 0.0

    def _m_chat_postMessage(self, args: dict[str, Any]) -> Answer:
        channel = str(args.get("channel", "")).lstrip("#")
        if not channel:
            return Answer(body={"ok": False, "error": "channel_not_found"})
        if not args.get("text") and not args.get("blocks") and not args.get("attachments"):
            return Answer(body={"ok": False, "error": "no_text"})
        refused = _invalid_blocks(args)
        if refused is not None:
            return refused
        wait = self._take_token(channel)
        if wait:
            return Answer(status=429, body={"ok": False, "error": "ratelimited"},
                          headers={"Retry-After": str(max(1, round(wait)))})
        message = self._record("post", channel, args)
        return Answer(body={"ok": True, "channel": channel, "ts": message["ts"], "message": _view(message)})

    def _record(self, op: str, channel: str, args: dict[str, Any], *, ts: str = "") -> dict[str, Any]:
        message = {"channel": channel, "ts": ts or self._ts(), "thread_ts": str(args.get("thread_ts") or ""),
                   "text": str(args.get("text") or ""), "blocks": args.get("blocks") or [],
                   "metadata": args.get("metadata") or None, "op": op, "user": "U0SANDBOX1"}
        if args.get("user"):
            message["recipient"] = str(args["user"])
        if args.get("reply_broadcast") in (True, "true", "1", 1):
            message["reply_broadcast"] = True  # the thread reply is also shown in the channel
        if op == "post":
            self.messages[(channel, message["ts"])] = message
        self.log.append(dict(message))
        return message

    def _m_chat_update(self, args: dict[str, Any]) -> Answer:
        channel, ts = str(args.get("channel", "")).lstrip("#"), str(args.get("ts", ""))
        message = self.messages.get((channel, ts))
        if message is None:
            return Answer(body={"ok": False, "error": "message_not_found"})
        refused = _invalid_blocks(args)
        if refused is not None:
            return refused
        message["text"] = str(args.get("text") or message["text"])
        if "blocks" in args:
            message["blocks"] = args.get("blocks") or []
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        self.log.append({**message, "op": "update"})
        return Answer(body={"ok": True, "channel": channel, "ts": ts, "text": message["text"],
                            "message": _view(message)})

    def _m_apps_connections_open(self, args: dict[str, Any]) -> Answer:
        # Socket Mode's first call; Slack takes only an app-level token (xapp-) here
        if not str(args.get("app_token") or "").startswith("xapp-") and not self._bearer.startswith("Bearer xapp-"):
            return Answer(body={"ok": False, "error": "not_allowed_token_type"})
        return Answer(body={"ok": True, "url": "wss://wss-sandbox.invalid/link/?ticket=sandbox"})

    def _m_chat_getPermalink(self, args: dict[str, Any]) -> Answer:
        channel, ts = str(args.get("channel", "")), str(args.get("message_ts", ""))
        if channel.startswith("#"):  # Slack wants the id here, not the name
            return Answer(body={"ok": False, "error": "channel_not_found"})
        if (channel, ts) not in self.messages:
            return Answer(body={"ok": False, "error": "message_not_found"})
        return Answer(body={"ok": True, "channel": channel,
                            "permalink": f"https://nordlys.slack.com/archives/{channel}/p{ts.replace('.', '')}"})

    def _m_conversations_list(self, args: dict[str, Any]) -> Answer:
        names = sorted(set(SANDBOX_CHANNELS) | {channel for channel, _ in self.messages})
        channels = [{"id": name, "name": name, "is_channel": True, "is_member": name not in self.not_member}
                    for name in names]
        limit = int(args.get("limit") or 100)
        start = int(args.get("cursor") or 0) if str(args.get("cursor") or "0").isdigit() else 0
        more = start + limit < len(channels)
        return Answer(body={"ok": True, "channels": channels[start:start + limit],
                            "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> Answer:
        channel = str(args.get("channel", "")).lstrip("#")
        if not args.get("user"):
            return Answer(body={"ok": False, "error": "user_not_in_channel"})
        message = self._record("ephemeral", channel, args)
        return Answer(body={"ok": True, "message_ts": message["ts"]})

    def _m_conversations_history(self, args: dict[str, Any]) -> Answer:
        channel = str(args.get("channel", "")).lstrip("#")
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        top = [m for (c, _), m in self.messages.items()
               if c == channel and (not m["thread_ts"] or m["thread_ts"] == m["ts"])]
        top.sort(key=lambda m: float(m["ts"]), reverse=True)
        if args.get("oldest"):
            top = [m for m in top if float(m["ts"]) > float(args["oldest"])]
        if args.get("latest"):
            top = [m for m in top if float(m["ts"]) < float(args["latest"])]
        return self._paged(top, args, with_meta=with_meta)

    def _m_conversations_replies(self, args: dict[str, Any]) -> Answer:
        channel, ts = str(args.get("channel", "")).lstrip("#"), str(args.get("ts", ""))
        if (channel, ts) not in self.messages:
            return Answer(body={"ok": False, "error": "thread_not_found"})
        thread = [m for (c, _), m in self.messages.items() if c == channel and (m["ts"] == ts or m["thread_ts"] == ts)]
        thread.sort(key=lambda m: float(m["ts"]))
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        return self._paged(thread, args, with_meta=with_meta)

    def _paged(self, items: list[dict[str, Any]], args: dict[str, Any], *, with_meta: bool) -> Answer:
        limit = int(args.get("limit") or 100)
        start = int(args.get("cursor") or 0) if str(args.get("cursor") or "0").isdigit() else 0
        page = items[start:start + limit]
        more = start + limit < len(items)
        return Answer(body={"ok": True, "messages": [_view(m, with_meta=with_meta) for m in page], "has_more": more,
                            "response_metadata": {"next_cursor": str(start + limit) if more else ""}})

    def _m_views_publish(self, args: dict[str, Any]) -> Answer:
        view = args.get("view") or {}
        if not args.get("user_id") or not isinstance(view, dict):
            return Answer(body={"ok": False, "error": "invalid_arguments"})
        record = {"id": f"V{len(self.views) + 1:08d}", "user_id": str(args["user_id"]), **view}
        self.views.append(record)
        return Answer(body={"ok": True, "view": record})

    def issue_trigger(self, *, user: str, channel: str) -> str:
        """The trigger_id Slack hands an app with an interaction, good for one views.open."""
        with self._lock:
            trigger = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
            self.triggers[trigger] = {"user": user, "channel": channel, "at": time.monotonic(), "used": False}
            return trigger

    def _m_views_open(self, args: dict[str, Any]) -> Answer:
        view = args.get("view")
        trigger = self.triggers.get(str(args.get("trigger_id") or ""))
        if trigger is None:
            return Answer(body={"ok": False, "error": "invalid_trigger_id"})
        if trigger["used"]:
            return Answer(body={"ok": False, "error": "exchanged_trigger_id"})
        if time.monotonic() - trigger["at"] > TRIGGER_LIFETIME_S:  # wall time: Slack does not follow a test clock
            return Answer(body={"ok": False, "error": "expired_trigger_id"})
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            return Answer(body={"ok": False, "error": "invalid_arguments"})
        refused = _invalid_blocks({"blocks": view.get("blocks") or []})
        if refused is not None:
            return refused
        trigger["used"] = True
        view_id = f"V{len(self.views) + len(self.modals) + 1:08d}M"
        record = {**view, "id": view_id, "team_id": "T0SANDBOX1", "app_id": "A0SANDBOX1", "bot_id": "B0SANDBOX1",
                  "root_view_id": view_id, "previous_view_id": None, "hash": secrets.token_hex(8),
                  "state": {"values": {}}, "private_metadata": str(view.get("private_metadata") or ""),
                  "callback_id": str(view.get("callback_id") or "")}
        self.modals[view_id] = {"user": trigger["user"], "channel": trigger["channel"], "view": record,
                                "errors": {}}
        return Answer(body={"ok": True, "view": record})

    def _m_usergroups_users_list(self, args: dict[str, Any]) -> Answer:
        group = str(args.get("usergroup", ""))
        if group not in self.usergroups:
            return Answer(body={"ok": False, "error": "no_such_subteam"})
        return Answer(body={"ok": True, "users": list(self.usergroups[group])})

    def _m_files_getUploadURLExternal(self, args: dict[str, Any]) -> Answer:
        file_id = f"F{len(self.files) + 1:08d}"
        self.files[file_id] = {"id": file_id, "name": str(args.get("filename", "")),
                               "declared_length": int(args.get("length") or 0), "length": None, "title": ""}
        return Answer(body={"ok": True, "upload_url": f"{self.base_url}/_upload/{file_id}", "file_id": file_id})

    def _upload(self, request: Request) -> Answer:
        file_id = request.path.rsplit("/", 1)[-1]
        if file_id not in self.files:
            return Answer(status=404, body=b"not found", headers={"Content-Type": "text/plain"})
        self.files[file_id]["length"] = len(_file_bytes(request))
        return Answer(body=f"OK - {len(request.body)}".encode(), headers={"Content-Type": "text/plain"})

    def _m_files_completeUploadExternal(self, args: dict[str, Any]) -> Answer:
        files = args.get("files") or []
        recorded = []
        for entry in files:
            known = self.files.get(str(entry.get("id")))
            if known is None or known["length"] is None:
                return Answer(body={"ok": False, "error": "file_not_found"})
            known["title"] = str(entry.get("title") or known["name"])
            recorded.append({"id": known["id"], "title": known["title"], "length": known["length"]})
        channel = str(args.get("channel_id") or args.get("channel") or "")
        if channel.startswith("#"):  # like Slack: files.completeUploadExternal takes channel ids only
            return Answer(body={"ok": False, "error": "channel_not_found"})
        if channel:
            message = self._record("post", channel, {"text": args.get("initial_comment") or "",
                                                     "thread_ts": args.get("thread_ts")})
            message["files"] = recorded
            self.log[-1]["files"] = recorded
        return Answer(body={"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in recorded]})


def _file_bytes(request: Request) -> bytes:
    """slack_sdk uploads the raw bytes; a multipart body is also accepted (curl -F)."""
    ctype = request.headers.get("content-type", "")
    if "multipart/form-data" in ctype and "boundary=" in ctype:
        boundary = ctype.split("boundary=", 1)[1].encode()
        for part in request.body.split(b"--" + boundary):
            if b"\r\n\r\n" in part and b"filename=" in part:
                return part.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
    return request.body


def _view(message: dict[str, Any], *, with_meta: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "message", "user": message["user"], "bot_id": "B0SANDBOX1",
                           "text": message["text"], "ts": message["ts"]}
    if message["blocks"]:
        out["blocks"] = message["blocks"]
    if message["thread_ts"]:
        out["thread_ts"] = message["thread_ts"]
    if with_meta and message.get("metadata"):
        out["metadata"] = message["metadata"]
    if message.get("files"):
        out["files"] = message["files"]
    return out
