"""Page webhooks (`feed`, `messages`): Meta's handshake, the X-Hub-Signature-256 check, events as mentions.

A small WSGI app on werkzeug's server (HTTPS when given a certificate; usually behind a reverse
proxy, docs/deploy.md).  The signature, HMAC-SHA256 of the raw body with the app secret, is checked
before anything is parsed.  Mentions go to `deliver` (the daemon's pipeline, no cursor moved) on one
worker thread; the answer leaves within ANSWER_WITHIN_S whether or not storing has finished, so
Meta's time limit is kept, and polling stays on as reconciliation: a missed event loses nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from connectors.wsgi import WsgiServer
from monitor import messages as msg
from monitor.model import Author, NewMention

log = logging.getLogger(__name__)

ANSWER_WITHIN_S = 5.0  # Meta's webhook docs ask for "200 OK" and give no number; retries follow (36 h)
MAX_BODY = 1_000_000  # Meta batches up to 1000 updates; larger bodies are refused before reading

Deliver = Callable[[str, list[NewMention]], None]  # (kind, mentions) -> stored


def signature_ok(body: bytes, header: str, app_secret: str) -> bool:
    """X-Hub-Signature-256: `sha256=` + hex HMAC-SHA256 of the raw body, keyed with the app secret."""
    if not app_secret or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    # as bytes: compare_digest refuses str with non-ASCII characters (a hostile header) with TypeError
    return hmac.compare_digest(expected.encode(), header.removeprefix("sha256=").strip().encode())


def _when(value: Any) -> datetime:
    """Webhook times: epoch seconds (feed) or milliseconds (messaging)."""
    number = float(value)
    return datetime.fromtimestamp(number / 1000 if number > 10**11 else number, UTC)


def mentions_from(payload: dict[str, Any], *, page_id: str,
                  conversation_of: Callable[[str], str] = lambda psid: "") -> dict[str, list[NewMention]]:
    """Comments added or edited (`feed`) and Messenger messages (`messages`), by kind."""
    out: dict[str, list[NewMention]] = {"comment": [], "message": []}
    for entry in payload.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            if change.get("field") != "feed" or value.get("item") != "comment" or value.get("verb") not in ("add", "edited"):
                continue  # reactions, posts, removals: nothing a person waits an answer for
            person, post_id, comment_id = value.get("from") or {}, str(value["post_id"]), str(value["comment_id"])
            parent = str(value.get("parent_id") or "")
            out["comment"].append(NewMention(
                platform="facebook", kind="comment", external_id=comment_id, text=str(value.get("message", "")),
                author=Author(id=str(person.get("id", "")), name=str(person.get("name", ""))),
                created_at=_when(value["created_time"]), conversation_id=post_id,
                parent_id="" if parent == post_id else parent,
                url=f"https://www.facebook.com/{post_id}?comment_id={comment_id}", mentions_brand=True,
                from_brand=str(person.get("id", "")) == page_id, raw=value))
        for event in entry.get("messaging") or []:
            message = event.get("message") or {}
            if "mid" not in message or "text" not in message:
                continue  # deliveries, reads, attachments without text
            sender = str((event.get("sender") or {}).get("id", ""))
            customer = str((event.get("recipient") or {}).get("id", "")) if sender == page_id else sender
            out["message"].append(NewMention(
                platform="facebook", kind="message", external_id=str(message["mid"]), text=str(message["text"]),
                author=Author(id=sender, name=""), created_at=_when(event["timestamp"]),
                conversation_id=conversation_of(customer),
                url=f"https://business.facebook.com/latest/inbox/messenger?asset_id={page_id}",
                mentions_brand=True, from_brand=sender == page_id, raw=event))
    return out


class FacebookWebhook:
    """The WSGI app: GET is the subscription handshake, POST an event batch."""

    def __init__(self, *, app_secret: str, verify_token: str, page_id: str, deliver: Deliver,
                 conversation_of: Callable[[str], str] = lambda psid: "") -> None:
        self._app_secret = app_secret
        self._verify_token = verify_token
        self.page_id = page_id
        self.conversation_of = conversation_of
        self._deliver = deliver
        self._work: queue.Queue[tuple[dict[str, Any], threading.Event] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._store_loop, name="facebook-webhook", daemon=True)
        self._worker.start()
        self.received = 0  # event batches accepted (for tests and metrics)

    def __repr__(self) -> str:
        return f"FacebookWebhook(page_id={self.page_id!r})"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        return self.respond(Request(environ))(environ, start_response)

    def respond(self, request: Request) -> Response:
        if request.method == "GET":
            args = request.args
            if args.get("hub.mode") == "subscribe" and self._verify_token and hmac.compare_digest(
                    args.get("hub.verify_token", "").encode(), self._verify_token.encode()):
                return Response(args.get("hub.challenge", ""), mimetype="text/plain")
            log.warning(msg.LOG_FB_WEBHOOK_BAD_VERIFY)
            return Response("verification failed", status=403, mimetype="text/plain")
        if request.method != "POST":
            return Response(status=405)
        if (request.content_length or 0) > MAX_BODY:
            return Response(status=413)
        body = request.get_data(cache=False)
        if not signature_ok(body, request.headers.get("X-Hub-Signature-256", ""), self._app_secret):
            log.warning(msg.LOG_FB_WEBHOOK_BAD_SIGNATURE)
            return Response("bad signature", status=401, mimetype="text/plain")
        try:
            payload = json.loads(body)
        except ValueError:
            return Response("not JSON", status=400, mimetype="text/plain")
        if not isinstance(payload, dict) or payload.get("object") != "page":
            return Response(status=200)  # not ours to read; a non-200 would only make Meta retry
        self.received += 1
        stored = threading.Event()
        self._work.put((payload, stored))
        stored.wait(ANSWER_WITHIN_S)  # usually stored by now; if not, it still will be
        return Response("EVENT_RECEIVED", status=200, mimetype="text/plain")

    def _store_loop(self) -> None:
        while (item := self._work.get()) is not None:
            payload, stored = item
            try:
                for kind, mentions in mentions_from(payload, page_id=self.page_id,
                                                    conversation_of=self.conversation_of).items():
                    if mentions:
                        self._deliver(kind, mentions)
            except Exception:  # a bad event or a busy database: polling reads it again
                log.exception(msg.LOG_FB_WEBHOOK_STORE_FAILED)
            finally:
                stored.set()

    def close(self) -> None:
        self._work.put(None)


class WebhookServer(WsgiServer):
    """The webhook endpoint's server (connectors/wsgi.py)."""

    def __init__(self, app: FacebookWebhook, *, host: str, port: int, certfile: str = "", keyfile: str = "") -> None:
        super().__init__(app, host=host, port=port, certfile=certfile, keyfile=keyfile, name="facebook-webhook-server")
