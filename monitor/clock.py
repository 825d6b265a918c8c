"""Where the daemon gets the time: the wall clock, or a settable one for tests and simulations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class Clock:
    speed: float = 1.0  # how many of its seconds pass in a wall-clock second (ScaledClock: --clock-speed)

    def now(self) -> datetime:
        return datetime.now(UTC)


class SettableClock(Clock):
    """A clock that moves only when told to (SLA tests, the simulated day in bench/)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


class ScaledClock(Clock):
    """A clock that runs `speed` times faster than the wall clock (`run --clock-speed`, the demo).

    It starts at the wall clock's now; `advance` moves it on as a SettableClock's would, so the
    sandbox can follow it like any test clock."""

    def __init__(self, speed: float, *, start: datetime | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not speed > 0:
            raise ValueError(f"a clock speed must be above 0, not {speed}")
        self.speed = float(speed)
        self._start = start or datetime.now(UTC)
        self._monotonic = monotonic
        self._began = monotonic()
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._start + self._offset + timedelta(seconds=(self._monotonic() - self._began) * self.speed)

    def advance(self, delta: timedelta | float) -> datetime:
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        with self._lock:
            self._offset += delta
        return self.now()

    def real_seconds(self, seconds: float) -> float:
        """How long `seconds` of this clock's time last on the wall clock."""
        return seconds / self.speed
