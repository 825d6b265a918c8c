"""The few types every fake platform module shares: a parsed request, an answer, the clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Clock:
    """Sandbox time.

    On its own: the wall clock plus an offset that tests move forward. Following another clock
    (`follow`, what the test fixtures do with the test's SettableClock), it reads and moves that
    clock instead, so the platforms and the daemon under test share one "now" on any date.
    """

    def __init__(self) -> None:
        self.offset_s = 0.0
        self._now: Callable[[], float] | None = None
        self._advance: Callable[[float], None] | None = None
        self._advanced_s = 0.0  # every advance, followed or not: rate limiters refill with it

    def follow(self, *, now: Callable[[], float], advance: Callable[[float], None]) -> None:
        self._now, self._advance = now, advance
        self.offset_s = 0.0

    def now(self) -> float:
        return (self._now() if self._now is not None else time.time()) + self.offset_s

    def advance(self, seconds: float) -> None:
        self._advanced_s += seconds
        if self._advance is not None:
            self._advance(seconds)
        else:
            self.offset_s += seconds

    def elapsed(self) -> float:
        """Seconds for rate limiters: real elapsed time plus every advance.

        Slack's limiter refills in real time and slack-sdk waits out a 429 with a real sleep, so a
        bucket must refill while a test's clock stands still, and also when a test moves it.
        """
        return time.monotonic() + self._advanced_s


@dataclass
class Request:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form_or_json(self) -> dict[str, Any]:
        """Slack and Graph accept either a form or a JSON body."""
        ctype = self.headers.get("content-type", "")
        if "json" in ctype:
            data = self.json()
            return data if isinstance(data, dict) else {}
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    served: list[str] = field(default_factory=list)  # ids of items this read answer returned

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


def iso_x(epoch: float) -> str:
    """X's created_at format: 2024-05-01T10:00:00.000Z"""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def iso_graph(epoch: float) -> str:
    """Graph's created_time format: 2024-05-01T10:00:00+0000"""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_time(value: str | int | float | None, default: float) -> float:
    """Accept X / Graph / ISO timestamps or epoch seconds."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.replace(".", "", 1).isdigit():
        return float(text)
    text = text.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
