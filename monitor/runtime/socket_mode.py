"""Keeps Slack's Socket Mode (buttons, /mentions, App Home) connecting in the background.

Slack unreachable at start, or the app token refused, must not stop the daemon: alerts still go out
through the Web API outbox, and Socket Mode is tried again on the SOCKET_MODE back-off.  The state is
logged on each change and shown on /healthz (`slack_socket_mode`).  Once connected, slack-sdk's
client reconnects by itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from connectors.base import AuthFailed, ConnectorError
from monitor import messages as msg
from monitor.clock import Clock
from monitor.retry import AUTH_PROBES, SOCKET_MODE


class Connection(Protocol):
    """What `connect()` returns: a live Socket Mode connection."""

    def close(self) -> None: ...

log = logging.getLogger(__name__)

COMPONENT = "slack_socket_mode"


class SocketModeSupervisor:
    """`connect()` makes one attempt and returns a handle with .close(), or raises a ConnectorError."""

    def __init__(self, *, connect: Callable[[], Connection], clock: Clock | None = None,
                 report: Callable[..., None] | None = None) -> None:
        self._connect = connect
        self.clock = clock or Clock()
        self._report = report  # Metrics.set_component
        self.handle: Connection | None = None
        self.failures = 0
        self.next_attempt_at: datetime | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attempt(self) -> bool:
        """One try; on failure the next is due after the back-off (AUTH_PROBES when the token was refused)."""
        try:
            handle = self._connect()
        except ConnectorError as exc:
            self.failures += 1
            policy = AUTH_PROBES if isinstance(exc, AuthFailed) else SOCKET_MODE
            delay = policy.delay(self.failures)
            self.next_attempt_at = self.clock.now() + delay
            log.warning(msg.LOG_SOCKET_MODE_DOWN, exc, delay.total_seconds(), self.failures)
            self._status(False, msg.HEALTH_SOCKET_MODE_DOWN.format(reason=exc, failures=self.failures,
                                                                    next=self.next_attempt_at.isoformat()))
            return False
        self.handle = handle
        if self.failures:
            log.warning(msg.LOG_SOCKET_MODE_UP_AFTER, self.failures)
        else:
            log.info(msg.LOG_SOCKET_MODE_UP)
        self.failures = 0
        self.next_attempt_at = None
        self._status(True, "")
        return True

    def start(self) -> SocketModeSupervisor:
        """The first attempt now, in the background (never blocking or failing the daemon's start)."""
        self._thread = threading.Thread(target=self._run, name="socket-mode", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set() and not self.attempt():
            wait = (self.next_attempt_at - self.clock.now()) if self.next_attempt_at else timedelta(0)
            self._stop.wait(max(0.0, wait.total_seconds()))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.handle is not None:
            self.handle.close()

    def _status(self, ok: bool, detail: str) -> None:
        if self._report is not None:
            self._report(COMPONENT, ok=ok, detail=detail)
