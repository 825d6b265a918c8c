"""Meta's side of Page webhooks in the sandbox: signs each event and POSTs it to the daemon.

Like Meta: the body is JSON, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the app
secret>`, and a delivery that is not answered 200 in time is retried with growing pauses (Meta keeps
trying for up to 36 hours; here the pauses are `retry_after_s`).  Switches: a share of deliveries
signed with a wrong secret, a share dropped (never sent: the daemon's polling must find them).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
from typing import Any

import requests

TIMEOUT_S = 20.0  # Meta's limit on an answer


class WebhookSender:
    def __init__(self) -> None:
        self.url = ""
        self.app_secret = ""
        self.bad_signatures = 0.0  # share of deliveries signed with a wrong secret
        self.dropped = 0.0  # share of events never delivered
        self.retry_after_s: list[float] = [0.5, 1.0, 2.0, 4.0]
        self.log: list[dict[str, Any]] = []  # every attempt: event id, attempt, status, at
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[bytes, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._shares = {"bad": 0.0, "drop": 0.0}
        self._session = requests.Session()

    def configure(self, *, url: str | None = None, app_secret: str | None = None, bad_signatures: float | None = None,
                  dropped: float | None = None, retry_after_s: list[float] | None = None) -> None:
        with self._lock:
            if url is not None:
                self.url = url
            if app_secret is not None:
                self.app_secret = app_secret
            if bad_signatures is not None:
                self.bad_signatures = float(bad_signatures)
            if dropped is not None:
                self.dropped = float(dropped)
            if retry_after_s is not None:
                self.retry_after_s = [float(s) for s in retry_after_s]
            if self.url and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
                self._thread.start()

    def _due(self, key: str, share: float) -> bool:
        if share <= 0:
            return False
        self._shares[key] += share
        if self._shares[key] >= 1.0:
            self._shares[key] -= 1.0
            return True
        return False

    def send(self, payload: dict[str, Any], *, event_id: str) -> None:
        """Queue one event (called by the fake Graph API when an item is posted)."""
        with self._lock:
            if not self.url:
                return
            if self._due("drop", self.dropped):
                self.log.append({"id": event_id, "attempt": 0, "status": "dropped", "at": time.time()})
                return
        self._queue.put((json.dumps(payload, separators=(",", ":")).encode(), event_id))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            body, event_id = item
            threading.Thread(target=self._deliver, args=(body, event_id), daemon=True).start()

    def _deliver(self, body: bytes, event_id: str) -> None:
        with self._lock:
            secret = "not-the-app-secret" if self._due("bad", self.bad_signatures) else self.app_secret
            url, pauses = self.url, list(self.retry_after_s)
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        for attempt in range(1 + len(pauses)):
            try:
                answer = self._session.post(url, data=body, timeout=TIMEOUT_S, headers={
                    "Content-Type": "application/json", "X-Hub-Signature-256": signature})
                status: int | str = answer.status_code
            except requests.RequestException as exc:
                status = type(exc).__name__
            with self._lock:
                self.log.append({"id": event_id, "attempt": attempt + 1, "status": status, "at": time.time()})
            if status == 200 or attempt == len(pauses):
                return
            time.sleep(pauses[attempt])

    def stop(self) -> None:
        self._queue.put(None)
