"""The Slack client's side of the sandbox: a page showing the Slack record, and the requests Slack sends an app.

A person (or a headless browser) reads the channels on `/slack`, presses an alert's buttons, fills in
the Reply form and types `/mentions ...`; each becomes what Slack itself would send the app's Request
URL (docs.slack.dev, "Verifying requests from Slack" and "Handling user interaction"):

- a POST signed with the app's signing secret: `X-Slack-Request-Timestamp` (epoch seconds, wall clock)
  and `X-Slack-Signature: v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`;
- buttons and menus as `payload=<block_actions JSON>`, a submitted modal as `payload=<view_submission
  JSON>`, both form-encoded; a slash command as its form fields (command, text, user_id, channel_id,
  trigger_id, response_url, ...); opening the app's Home tab as an Events API `app_home_opened`
  event (a JSON body);
- the app's answer handled as Slack does: a command's ack body is shown to the person who typed it
  (or to the channel with response_type "in_channel"); a modal's ack closes it, or shows
  `response_action: errors` beside its inputs, or `update`s it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from connectors.sandbox.slack_api import SANDBOX_CHANNELS, SlackApi, _view
from connectors.sandbox.wire import Answer, Request

log = logging.getLogger(__name__)

TEAM = {"id": "T0SANDBOX1", "domain": "nordlys"}
APP_ID = "A0SANDBOX1"
VERIFICATION_TOKEN = "sandbox-verification-token"  # deprecated by Slack, still sent; nobody checks it
APP_TIMEOUT_S = 10.0
PAGE_FILES = {"": ("index.html", "text/html; charset=utf-8"), "page.js": ("page.js", "text/javascript; charset=utf-8"),
              "page.css": ("page.css", "text/css; charset=utf-8")}


def signature(*, secret: str, timestamp: str, body: str) -> str:
    """Slack's request signature (version v0) of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return f"v0={digest}"


@dataclass
class AppLink:
    """Where the app listens (its Request URL) and the secret Slack signs with."""

    url: str = ""
    signing_secret: str = ""
    users: list[str] = field(default_factory=list)


class SlackClient:
    """What a person does in Slack, turned into the requests Slack sends the app."""

    def __init__(self, *, slack: SlackApi, extra: Any = None) -> None:
        self.slack = slack
        self.extra = extra  # () -> {"x_posts": [...], "fb_posts": [...], "now": epoch}: the other platforms' record
        self.link = AppLink()
        self._lock = threading.Lock()

    def connect(self, *, url: str, signing_secret: str, users: list[str]) -> None:
        """Send interactions to the app at `url`; `users` are the people the page lets you be."""
        with self._lock:
            self.link = AppLink(url=url, signing_secret=signing_secret, users=list(dict.fromkeys(users)))

    # ------------------------------------------------------------------ HTTP routes (/slack...)

    def handle(self, request: Request) -> Answer:
        route = request.path.removeprefix("/slack").strip("/")
        if request.method == "GET" and route in PAGE_FILES:
            name, ctype = PAGE_FILES[route]
            body = resources.files("connectors.sandbox").joinpath("page", name).read_bytes()
            return Answer(body=body, headers={"Content-Type": ctype, "Cache-Control": "no-store"})
        if request.method == "GET" and route == "ui/state":
            return Answer(body=self.state(user=request.query.get("user", "")))
        if request.method == "POST" and route.startswith("respond/"):
            return self._respond(route.removeprefix("respond/"), request)
        if request.method != "POST" or not route.startswith("ui/"):
            return Answer(status=404, body={"error": f"no page route {request.method} {request.path}"})
        try:
            args = request.json()
        except ValueError:
            return Answer(status=400, body={"error": "the page's API takes a JSON body"})
        actions = {"ui/press": self.press, "ui/submit": self.submit, "ui/close": self.close,
                   "ui/command": self.command, "ui/home": self.open_home}
        action = actions.get(route)
        if action is None or not isinstance(args, dict):
            return Answer(status=404, body={"error": f"no page route {request.method} {request.path}"})
        try:
            return Answer(body=action(**args))
        except (TypeError, KeyError, ValueError) as exc:
            return Answer(status=400, body={"error": f"bad page request: {exc}"})

    # ------------------------------------------------------------------ what the page shows

    def state(self, *, user: str) -> dict[str, Any]:
        with self.slack._lock:
            messages = sorted(self.slack.messages.values(), key=lambda m: float(m["ts"]))
            shown = [{**_view(m), "channel": m["channel"], "ephemeral": False} for m in messages]
            shown += [{**_view(m), "channel": m["channel"], "ephemeral": True} for m in self.slack.log
                      if m["op"] == "ephemeral" and m.get("recipient") == user]
            modal = next((dict(m["view"], errors=m["errors"]) for m in self.slack.modals.values()
                          if m["user"] == user), None)
            channels = sorted(set(SANDBOX_CHANNELS) | {m["channel"] for m in messages})
            home = next((dict(v) for v in reversed(self.slack.views) if v.get("user_id") == user), None)
        shown.sort(key=lambda m: float(m["ts"]))
        with self._lock:
            link = self.link
        return {"channels": channels, "messages": shown, "modal": modal, "home": home, "users": link.users,
                "app_connected": bool(link.url), **(self.extra() if self.extra else {})}

    # ------------------------------------------------------------------ what a person does

    def press(self, *, user: str, channel: str, ts: str, action_id: str, block_id: str = "",
              value: str | None = None, selected: str | None = None) -> dict[str, Any]:
        """A button (`value`) or a select / overflow option (`selected`) on a message."""
        with self.slack._lock:
            message = self.slack.messages.get((channel, ts))
            if message is None:
                raise KeyError(f"no message {ts} in {channel}")
            element = _element(message["blocks"], action_id=action_id, block_id=block_id)
            shown = _view(message)
        trigger = self.slack.issue_trigger(user=user, channel=channel)
        action: dict[str, Any] = {"action_id": action_id, "block_id": block_id, "type": element.get("type", "button"),
                                  "action_ts": f"{time.time():.6f}"}
        if selected is not None:
            option = next((o for o in element.get("options") or [] if o.get("value") == selected), None)
            if option is None:
                raise ValueError(f"{action_id} has no option {selected!r}")
            action["selected_option"] = option
        else:
            action |= {"text": element.get("text"), "value": value if value is not None else element.get("value", "")}
        container = {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False}
        if message["thread_ts"]:
            container["thread_ts"] = message["thread_ts"]
        payload = {"type": "block_actions", "user": self._user(user), "api_app_id": APP_ID,
                   "token": VERIFICATION_TOKEN, "container": container, "trigger_id": trigger, "team": TEAM,
                   "enterprise": None, "is_enterprise_install": False, "channel": {"id": channel, "name": channel},
                   "message": shown, "state": {"values": {}}, "actions": [action],
                   "response_url": self._response_url(channel=channel, user=user)}
        status, _ = self._send(urlencode({"payload": json.dumps(payload)}))
        return {"status": status}

    def submit(self, *, user: str, view_id: str, values: dict[str, dict[str, str]]) -> dict[str, Any]:
        """The modal's submit button, with what was typed: {block_id: {action_id: text}}."""
        with self.slack._lock:
            modal = self.slack.modals.get(view_id)
            if modal is None or modal["user"] != user:
                raise KeyError(f"no open modal {view_id} for {user}")
            view = dict(modal["view"])
        view["state"] = {"values": {block: {action: {"type": "plain_text_input", "value": text}
                                            for action, text in inputs.items()} for block, inputs in values.items()}}
        payload = {"type": "view_submission", "team": TEAM, "user": self._user(user), "api_app_id": APP_ID,
                   "token": VERIFICATION_TOKEN, "trigger_id": self.slack.issue_trigger(user=user, channel=""),
                   "view": view, "response_urls": [], "is_enterprise_install": False, "enterprise": None}
        status, answer = self._send(urlencode({"payload": json.dumps(payload)}))
        response = answer if isinstance(answer, dict) else {}
        with self.slack._lock:
            if status != 200:  # Slack keeps the modal open and says the app did not answer
                modal["errors"] = {"": f"The app answered HTTP {status}."}
            elif response.get("response_action") == "errors":
                modal["errors"] = dict(response.get("errors") or {})
            elif response.get("response_action") == "update" and isinstance(response.get("view"), dict):
                modal["view"] = {**modal["view"], **response["view"]}
                modal["errors"] = {}
            else:  # an empty ack (or "clear"): the modal closes
                self.slack.modals.pop(view_id, None)
        return {"status": status, "closed": view_id not in self.slack.modals}

    def close(self, *, user: str, view_id: str) -> dict[str, Any]:
        """The modal's Cancel (our modals do not ask for view_closed, so the app hears nothing)."""
        with self.slack._lock:
            modal = self.slack.modals.get(view_id)
            if modal is not None and modal["user"] == user:
                self.slack.modals.pop(view_id)
        return {"closed": True}

    def command(self, *, user: str, channel: str, text: str) -> dict[str, Any]:
        """`/mentions <text>` typed in `channel`."""
        command, _, rest = text.strip().partition(" ")
        body = urlencode({"token": VERIFICATION_TOKEN, "team_id": TEAM["id"], "team_domain": TEAM["domain"],
                          "channel_id": channel, "channel_name": channel, "user_id": user, "user_name": user.lower(),
                          "command": command or "/mentions", "text": rest.strip(), "api_app_id": APP_ID,
                          "is_enterprise_install": "false",
                          "response_url": self._response_url(channel=channel, user=user),
                          "trigger_id": self.slack.issue_trigger(user=user, channel=channel)})
        status, answer = self._send(body)
        if status != 200:
            self._show(channel=channel, user=user, answer={"text": f"/{command.lstrip('/')} failed: the app answered "
                                                                     f"HTTP {status}."})
        elif isinstance(answer, dict) and (answer.get("text") or answer.get("blocks")):
            self._show(channel=channel, user=user, answer=answer)
        elif isinstance(answer, str) and answer.strip():  # a plain-text ack body is shown as it is
            self._show(channel=channel, user=user, answer={"text": answer})
        return {"status": status}

    def open_home(self, *, user: str) -> dict[str, Any]:
        """The app's Home tab opened: an Events API `app_home_opened` event (JSON, signed); the app
        answers it by publishing the tab with views.publish."""
        now = time.time()
        event = {"token": VERIFICATION_TOKEN, "team_id": TEAM["id"], "api_app_id": APP_ID, "type": "event_callback",
                 "event_id": f"Ev{int(now * 1000)}", "event_time": int(now), "authorizations": [
                     {"team_id": TEAM["id"], "user_id": "U0SANDBOX1", "is_bot": True, "is_enterprise_install": False}],
                 "event": {"type": "app_home_opened", "user": user, "channel": f"D{user}", "tab": "home",
                           "event_ts": f"{now:.6f}"}}
        status, _ = self._send(json.dumps(event), content_type="application/json")
        return {"status": status}

    # ------------------------------------------------------------------ plumbing

    def _user(self, user: str) -> dict[str, str]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM["id"]}

    def _response_url(self, *, channel: str, user: str) -> str:
        return f"{self.slack.base_url}/slack/respond/{quote(channel, safe='')}:{quote(user, safe='')}"

    def _respond(self, key: str, request: Request) -> Answer:
        """A message sent to a response_url: shown like a command's answer."""
        channel, _, user = key.partition(":")
        try:
            answer = request.json()
        except ValueError:
            return Answer(status=400, body=b"invalid_payload", headers={"Content-Type": "text/plain"})
        self._show(channel=channel, user=user, answer=answer if isinstance(answer, dict) else {})
        return Answer(body=b"ok", headers={"Content-Type": "text/plain"})

    def _show(self, *, channel: str, user: str, answer: dict[str, Any]) -> None:
        args = {"text": answer.get("text") or "", "blocks": answer.get("blocks") or []}
        with self.slack._lock:
            if answer.get("response_type") == "in_channel":
                self.slack._record("post", channel, args)
            else:
                self.slack._record("ephemeral", channel, {**args, "user": user})

    def _send(self, body: str, *, content_type: str = "application/x-www-form-urlencoded") -> tuple[int, Any]:
        """POST `body` to the app as Slack would; the app's HTTP status and its (JSON or text) answer."""
        with self._lock:
            link = self.link
        if not link.url:
            raise ValueError("no app is connected to the sandbox (run --sandbox starts one)")
        stamp = str(int(time.time()))  # the wall clock, as Slack's: the app checks it against its own
        request = urllib.request.Request(link.url, data=body.encode(), method="POST", headers={
            "Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature(secret=link.signing_secret, timestamp=stamp, body=body),
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"})
        try:
            with urllib.request.urlopen(request, timeout=APP_TIMEOUT_S) as response:
                status, data, ctype = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            status, data, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
        except OSError as exc:
            log.warning("the app at %s did not answer: %s", link.url, exc)
            return 0, None
        text = data.decode("utf-8", "replace")
        if "json" in ctype and text.strip():
            try:
                return status, json.loads(text)
            except ValueError:
                return status, text
        return status, text


def _element(blocks: list[dict[str, Any]], *, action_id: str, block_id: str) -> dict[str, Any]:
    """The interactive element a person used: in an actions block or a section's accessory."""
    for block in blocks:
        if block_id and block.get("block_id") != block_id:
            continue
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            candidates.append(block["accessory"])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return element
    raise KeyError(f"no element {action_id} in block {block_id or '(any)'}")
