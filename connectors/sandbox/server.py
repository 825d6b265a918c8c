"""The loopback sandbox: one HTTP server serving fake X, Graph and Slack APIs plus a control API.

Real SDK clients (tweepy, facebook-sdk, slack_sdk) are pointed at it; tests, benchmarks and the
demo inject mentions, switch faults on, move the clock and read back what the bot posted.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from connectors.sandbox import graph_api, slack_api, x_api
from connectors.sandbox.seed import load_seed, release
from connectors.sandbox.slack_client import SlackClient
from connectors.sandbox.wire import Answer, Clock, Request

log = logging.getLogger(__name__)
_GRAPH_PATH = re.compile(r"^/v\d+\.\d+(/.*)$")
MALFORMED_BODY = b'{"data": [{"id": "1", "text": '  # cut off mid-object, as a dropped connection leaves it


class Sandbox:
    """Fake X API v2, Graph API and Slack Web API on 127.0.0.1, one port."""

    def __init__(self, *, port: int = 0, brand_x_user_id: str = "1600000000000000001",
                 brand_x_handle: str = "nordlysshop", page_id: str = "104000000000001",
                 page_name: str = "Nordlys Shop", clock: Any = None) -> None:
        """`clock`: a clock of the daemon's kind (now() -> datetime, advance(seconds)) that the
        sandbox then follows, so a test has one source of time; by default the wall clock."""
        self.port = port
        self.clock = Clock()
        self.daemon_clock = clock  # what a test hands to the connectors it builds by hand
        if clock is not None:
            self.clock.follow(now=lambda: clock.now().timestamp(), advance=clock.advance)
        self.x = x_api.XApi(clock=self.clock, brand_user_id=brand_x_user_id, brand_handle=brand_x_handle)
        self.graph = graph_api.GraphApi(clock=self.clock, page_id=page_id, page_name=page_name)
        self.slack = slack_api.SlackApi(clock=self.clock)
        self.slack_client = SlackClient(slack=self.slack, extra=lambda: {
            "x_posts": self.x_posts(), "fb_posts": self.fb_posts(), "now": self.clock.now()})
        self._lock = threading.RLock()
        self._faults: list[dict[str, Any]] = []
        self._requests: dict[str, int] = {}
        self._served: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[Any] = set()  # open keep-alive sockets, closed by stop()
        self._thread: threading.Thread | None = None
        self._players: list[threading.Thread] = []
        self._stop_play = threading.Event()
        self.url = f"http://127.0.0.1:{port}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Sandbox:
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.graph.base_url = self.url
        self.slack.base_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sandbox", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop_play.set()
        self.graph.webhooks.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ in-process control

    def add_tweets(self, items: list[dict[str, Any]] | dict[str, Any]) -> list[str]:
        return self.x.add(items if isinstance(items, list) else [items])

    def add_fb_comments(self, items: list[dict[str, Any]] | dict[str, Any]) -> list[str]:
        return self.graph.add_comments(items if isinstance(items, list) else [items])

    def add_fb_messages(self, items: list[dict[str, Any]] | dict[str, Any]) -> list[str]:
        return self.graph.add_messages(items if isinstance(items, list) else [items])

    def fb_psid(self, person_id: str) -> str:
        """The Messenger id (PSID) Graph gives the person who commented as `person_id`."""
        return self.graph.psid(person_id)

    def add_x_dms(self, items: list[dict[str, Any]] | dict[str, Any]) -> list[str]:
        """Direct messages customers send to the brand: {"text", "sender": {id, username, ...}}."""
        return self.x.add_dms(items if isinstance(items, list) else [items])

    def slack_messages(self) -> list[dict[str, Any]]:
        with self.slack._lock:
            return [dict(m) for m in self.slack.log]

    @property
    def page_url(self) -> str:
        """The page showing the Slack record like a channel, where a person clicks (see slack_client.py)."""
        return f"{self.url}/slack"

    def connect_slack_app(self, *, url: str, signing_secret: str, users: list[str]) -> None:
        """Deliver the page's clicks, modal submissions and /mentions to the app's Request URL, signed."""
        self.slack_client.connect(url=url, signing_secret=signing_secret, users=users)

    def slack_views(self) -> list[dict[str, Any]]:
        """What views.publish put on App Home tabs."""
        with self.slack._lock:
            return [dict(v) for v in self.slack.views]

    def slack_modals(self) -> list[dict[str, Any]]:
        """The modals views.open opened and nobody closed yet, oldest first."""
        with self.slack._lock:
            return [dict(m["view"]) for m in self.slack.modals.values()]

    def set_slack_usergroups(self, groups: dict[str, list[str]]) -> None:
        """Members of Slack user groups, {"S0..": ["U1", ...]}, for usergroups.users.list."""
        with self.slack._lock:
            self.slack.usergroups.update({str(k): [str(u) for u in v] for k, v in groups.items()})

    def x_posts(self) -> list[dict[str, Any]]:
        with self.x._lock:
            return [dict(p) for p in self.x.posts]

    def fb_posts(self) -> list[dict[str, Any]]:
        with self.graph._lock:
            return [dict(p) for p in self.graph.sent]

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def now(self) -> float:
        """Sandbox time, epoch seconds."""
        return self.clock.now()

    def add_fault(self, *, platform: str, path: str = "", status: int | None = None, times: int = 1,
                  delay_s: float = 0.0, body: str = "", method: str = "") -> None:
        """The next `times` requests to `platform` whose path starts with `path` (and, if given,
        whose HTTP method is `method`) fail this way; body "error:invalid_blocks" is Slack's
        {"ok": false, "error": "invalid_blocks"}.  A fault with only delay_s lets the request
        take effect and delays the answer: a post that lands while the client gives up."""
        if platform not in ("x", "facebook", "slack"):
            raise ValueError(f"unknown platform {platform!r}: use x, facebook or slack")
        with self._lock:
            self._faults.append({"platform": platform, "path": path, "status": status, "times": int(times),
                                 "delay_s": float(delay_s), "body": body, "method": method.upper()})

    def configure(self, *, x_limits: dict[str, tuple[int, int]] | None = None, slack_burst: int | None = None,
                  slack_refill_per_s: float | None = None, graph_calls_per_hour: int | None = None,
                  fb_late_comments: float | None = None, fb_late_by_s: float | None = None,
                  fb_late_wakes_post: bool | None = None, fb_same_second_messages: bool | None = None) -> None:
        """Change rate limits (tests turn them up or down) and Graph's switchable behaviour:
        `fb_late_comments` (share 0..1 of comments visible `fb_late_by_s` after their created_time;
        `fb_late_wakes_post` whether that moves the post's updated_time) and
        `fb_same_second_messages` (a message lands in the second its conversation was last read)."""
        if x_limits:
            self.x.limits.update({k: (int(v[0]), int(v[1])) for k, v in x_limits.items()})
        if slack_burst is not None:
            self.slack.burst = slack_burst
        if slack_refill_per_s is not None:
            self.slack.refill_per_s = slack_refill_per_s
        if graph_calls_per_hour is not None:
            self.graph.calls_per_hour = graph_calls_per_hour
        with self.graph._lock:
            if fb_late_comments is not None:
                self.graph.late_comments = max(0.0, min(1.0, float(fb_late_comments)))
            if fb_late_by_s is not None:
                self.graph.late_by_s = float(fb_late_by_s)
            if fb_late_wakes_post is not None:
                self.graph.late_wakes_post = bool(fb_late_wakes_post)
            if fb_same_second_messages is not None:
                self.graph.same_second_messages = bool(fb_same_second_messages)

    def configure_fb_webhooks(self, *, url: str | None = None, app_secret: str | None = None,
                              bad_signatures: float | None = None, dropped: float | None = None,
                              retry_after_s: list[float] | None = None) -> None:
        """Deliver Page webhooks (feed comments, Messenger messages) to `url`, signed with `app_secret`;
        a share with bad signatures, a share dropped, retries after `retry_after_s` pauses."""
        self.graph.webhooks.configure(url=url, app_secret=app_secret, bad_signatures=bad_signatures,
                                      dropped=dropped, retry_after_s=retry_after_s)

    def fb_webhook_log(self) -> list[dict[str, Any]]:
        with self.graph.webhooks._lock:
            return [dict(e) for e in self.graph.webhooks.log]

    def stats(self) -> dict[str, Any]:
        """Requests per endpoint and, per item id, how many read answers served it."""
        with self._lock:
            return {"requests": dict(self._requests), "served": dict(self._served)}

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._served.clear()
        self.clock.offset_s = 0.0
        self.x.reset()
        self.graph.reset()
        self.slack.reset()

    def play(self, items: list[Any], *, speed: float = 1.0) -> threading.Thread:
        """Release seed items over time in a background thread (the demo's live stream)."""
        thread = threading.Thread(target=release, args=(self, items),
                                  kwargs={"speed": speed, "stop": self._stop_play},
                                  name="sandbox-play", daemon=True)
        thread.start()
        self._players.append(thread)
        return thread

    # ------------------------------------------------------------------ request handling

    def dispatch(self, request: Request) -> tuple[Answer, float]:
        """The answer to one HTTP request and how long to wait before sending it."""
        if request.path.startswith("/_sandbox/"):
            return self._control(request), 0.0
        if request.path == "/slack" or request.path.startswith("/slack/"):
            return self.slack_client.handle(request), 0.0
        platform, endpoint = _classify(request, page_id=self.graph.page["id"])
        if platform is None:
            return Answer(status=404, body={"error": f"no fake API serves {request.path}"}), 0.0
        with self._lock:
            self._requests[endpoint] = self._requests.get(endpoint, 0) + 1
            fault = self._take_fault(platform, request.path, request.method)
        delay = fault["delay_s"] if fault else 0.0
        if fault and fault["body"] == "malformed":
            return Answer(body=MALFORMED_BODY, headers={"Content-Type": "application/json; charset=utf-8"}), delay
        if fault and platform == "slack" and fault["body"].startswith("error:"):  # Slack's HTTP 200 refusal
            return Answer(body={"ok": False, "error": fault["body"].removeprefix("error:")}), delay
        if fault and fault["status"]:
            module = {"x": x_api, "facebook": graph_api, "slack": slack_api}[platform]
            answer = module.fault_answer(int(fault["status"]))
            if platform == "x" and int(fault["status"]) == 429:
                answer.headers.update({"x-rate-limit-limit": "15", "x-rate-limit-remaining": "0",
                                       "x-rate-limit-reset": str(int(self.clock.now()) + 900)})
            if platform == "facebook":
                answer.headers["X-Business-Use-Case-Usage"] = self.graph._usage(full=int(fault["status"]) == 429)
            return answer, delay
        api = {"x": self.x, "facebook": self.graph, "slack": self.slack}[platform]
        answer = api.handle(request)
        if answer.served:
            with self._lock:
                for item_id in answer.served:
                    self._served[item_id] = self._served.get(item_id, 0) + 1
        return answer, delay

    def _take_fault(self, platform: str, path: str, method: str = "") -> dict[str, Any] | None:
        candidates = {path}
        graph = _GRAPH_PATH.match(path)
        if graph:
            candidates.add(graph.group(1))
        if path.startswith("/api/"):
            candidates.add(path.removeprefix("/api"))
            candidates.add(path.removeprefix("/api/"))
        for fault in self._faults:
            if fault.get("method") and fault["method"] != method.upper():
                continue
            if fault["platform"] == platform and any(c.startswith(fault["path"]) for c in candidates):
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _control(self, request: Request) -> Answer:
        route = (request.method, request.path.rstrip("/"))
        try:
            payload = request.json() if request.method == "POST" and request.body else {}
        except ValueError:
            return Answer(status=400, body={"error": "the control API takes a JSON body"})
        items = payload if isinstance(payload, list) else [payload]
        try:
            if route == ("POST", "/_sandbox/x/tweets"):
                return Answer(status=201, body={"ids": self.add_tweets(items)})
            if route == ("POST", "/_sandbox/x/dms"):
                return Answer(status=201, body={"ids": self.add_x_dms(items)})
            if route == ("POST", "/_sandbox/facebook/comments"):
                return Answer(status=201, body={"ids": self.add_fb_comments(items)})
            if route == ("POST", "/_sandbox/facebook/messages"):
                return Answer(status=201, body={"ids": self.add_fb_messages(items)})
            if route == ("GET", "/_sandbox/slack/messages"):
                return Answer(body=self.slack_messages())
            if route == ("GET", "/_sandbox/slack/views"):
                return Answer(body=self.slack_views())
            if route == ("POST", "/_sandbox/slack/app"):
                self.connect_slack_app(url=str(payload["url"]), signing_secret=str(payload["signing_secret"]),
                                       users=[str(u) for u in payload.get("users") or []])
                return Answer(body={"ok": True, "page": self.page_url})
            if route == ("POST", "/_sandbox/slack/usergroups"):
                self.set_slack_usergroups(payload)
                return Answer(body={"ok": True})
            if route == ("GET", "/_sandbox/x/posts"):
                return Answer(body=self.x_posts())
            if route == ("GET", "/_sandbox/facebook/posts"):
                return Answer(body=self.fb_posts())
            if route == ("GET", "/_sandbox/stats"):
                return Answer(body=self.stats())
            if route == ("POST", "/_sandbox/faults"):
                for fault in items:
                    self.add_fault(**{k: fault[k] for k in ("platform", "path", "status", "times", "delay_s", "body", "method")
                                      if k in fault})
                return Answer(status=201, body={"ok": True})
            if route == ("POST", "/_sandbox/clock"):
                self.advance_clock(float(payload.get("advance_s", 0)))
                return Answer(body={"now": self.clock.now()})
            if route == ("GET", "/_sandbox/clock"):
                return Answer(body={"now": self.clock.now()})
            if route == ("POST", "/_sandbox/facebook/webhooks"):
                self.configure_fb_webhooks(**payload)
                return Answer(body={"ok": True})
            if route == ("GET", "/_sandbox/facebook/webhooks"):
                return Answer(body=self.fb_webhook_log())
            if route == ("POST", "/_sandbox/config"):
                self.configure(**payload)
                return Answer(body={"ok": True})
            if route == ("POST", "/_sandbox/reset"):
                self.reset()
                return Answer(body={"ok": True})
        except (TypeError, ValueError, KeyError) as exc:
            return Answer(status=400, body={"error": f"bad control request: {exc}"})
        return Answer(status=404, body={"error": f"no control route {request.method} {request.path}"})


def _classify(request: Request, *, page_id: str) -> tuple[str | None, str]:
    """Which fake platform a request is for, and its endpoint name for the stats."""
    path = request.path
    if path.startswith("/2/"):
        return "x", f"{request.method} /2" + re.sub(r"/\d+(?=/|$)", "/:id", path[2:])
    if path.startswith("/api/") or path.startswith("/_upload/"):
        return "slack", f"{request.method} " + (path if path.startswith("/api/") else "/_upload/:file")
    graph = _GRAPH_PATH.match(path)
    if graph:
        parts = graph.group(1).strip("/").split("/")
        node = ":page_id" if parts[0] == page_id else ":id"
        return "facebook", f"{request.method} /{node}" + (f"/{parts[1]}" if len(parts) > 1 else "")
    return None, ""


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"
    # One buffered write per answer and no Nagle: otherwise keep-alive clients wait ~40 ms per
    # request on delayed ACKs.
    wbufsize = -1
    disable_nagle_algorithm = True
    server_version = "mention-monitor-sandbox/1"

    def setup(self) -> None:
        super().setup()
        with self.sandbox._lock:
            self.sandbox._connections.add(self.connection)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):
            pass  # the client went away (a killed daemon, a timed-out request): not a sandbox error

    def finish(self) -> None:
        with self.sandbox._lock:
            self.sandbox._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        # Silent on purpose: request lines carry Graph access tokens in their query strings.
        return

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(method=self.command, path=split.path, query=dict(parse_qsl(split.query)),
                          headers={k.lower(): v for k, v in self.headers.items()}, body=body)
        try:
            answer, delay = self.sandbox.dispatch(request)
        except Exception:  # a sandbox bug must show up as a 500, not a hung client
            log.exception("sandbox failed on %s %s", self.command, split.path)
            answer, delay = Answer(status=500, body={"error": "sandbox internal error"}), 0.0
        if delay:
            time.sleep(delay)
        data, ctype = answer.encoded()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.headers.pop("Content-Type", ctype))
            self.send_header("Content-Length", str(len(data)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


def serve_forever(*, port: int, seed: str | None) -> None:
    """`mention-monitor sandbox`: serve until interrupted, optionally replaying a seed file."""
    from monitor import messages

    sandbox = Sandbox(port=port).start()
    print(messages.CLI_SANDBOX_STARTED.format(url=sandbox.url), flush=True)
    if seed:
        items = load_seed(seed)
        sandbox.play(items)
        print(f"releasing {len(items)} seeded items over time from {seed}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
