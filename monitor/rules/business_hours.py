"""Business-hours clock: SLA deadlines that only tick while the team is at work.

`BusinessHours` is the `business_hours:` section of rules.yaml.  Opening hours
are wall-clock times in its timezone, so a daylight-saving change moves them
with the clock on the wall, as a person expects.  Holidays are whole local days:
public holidays of the listed countries, computed for every year by the maintained
`holidays` library, plus dates the team adds (a year-less "12-24" recurs every year),
minus the public holidays the team works on (`open_on`).
"""

from __future__ import annotations

import difflib
import json
import re
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from monitor import messages as msg

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# A safety stop for the day-by-day walk: a calendar with no open day at all.
_MAX_DAYS = 3 * 366


def rules_error(template: str, *, named: bool = False, **values: Any) -> PydanticCustomError:
    """A validation error whose text is ours (from monitor.messages), not pydantic's.

    named: the text already says what it is about ("rule 'x' ..."), so the
    YAML path is not put in front of it."""
    # no context is passed, so pydantic leaves braces in the text alone ("write when: {all: []}")
    return PydanticCustomError("rules_named" if named else "rules", template.format(**values))


@lru_cache(maxsize=1)
def _zone_names() -> list[str]:
    return sorted(available_timezones())


def parse_clock(value: str) -> time:
    """"09:00" -> time(9, 0); ValueError with a readable message otherwise."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(msg.RULES_CLOCK.format(value=value))
    return time(int(m.group(1)), int(m.group(2)))


def _to_holiday(value: Any) -> Any:
    """A closed day: a date, or "MM-DD" for the same day every year (returned as (month, day))."""
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,2}-\d{1,2}\s*", value):
        month, day = (int(p) for p in value.split("-"))
        try:
            date(2028, month, day)  # a leap year, so 02-29 is allowed
        except ValueError:
            raise rules_error(msg.RULES_DATE, value=value) from None
        return (month, day)
    return _to_date(value)


# python-holidays is asked in a short-lived child process: importing it costs a long-running daemon
# 9 MB (its registry and calendars) for the country codes a rules file is checked against, and 17 MB
# (all ~300 country modules) for one country's dates, kept for the life of the process (bench/memory.py).
_HOLIDAYS_CHILD = """
import json, sys
request = json.loads(sys.argv[1])
if request["ask"] == "codes":
    from holidays.registry import EntityLoader
    print(json.dumps(sorted(EntityLoader.get_country_codes())))
else:
    import holidays
    dates = {}
    for year in request["years"]:
        days = set()
        for code in request["countries"]:
            days.update(day.isoformat() for day in holidays.country_holidays(code, years=year))
        dates[year] = sorted(days)
    print(json.dumps(dates))
"""
_YEARS_BEFORE, _YEARS_AFTER = 1, 2  # years asked for with the one wanted: SLA deadlines cross a new year
_dates: dict[tuple[tuple[str, ...], int], frozenset[date]] = {}
_dates_lock = threading.Lock()


def _ask_holidays(request: dict[str, Any]) -> Any:
    done = subprocess.run([sys.executable, "-c", _HOLIDAYS_CHILD, json.dumps(request)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise RuntimeError(msg.HOLIDAYS_CHILD_FAILED.format(status=done.returncode, error=lines[-1] if lines else ""))
    return json.loads(done.stdout)


def public_holidays(countries: tuple[str, ...], year: int) -> frozenset[date]:
    """The public holidays of `countries` in `year` (python-holidays, maintained upstream)."""
    if not countries:
        return frozenset()
    with _dates_lock:  # the poll threads' first cases would each start a child
        found = _dates.get((countries, year))
        if found is None:
            if len(_dates) > 64:
                _dates.clear()
            years = list(range(year - _YEARS_BEFORE, year + _YEARS_AFTER + 1))
            asked = _ask_holidays({"ask": "dates", "countries": list(countries), "years": years})
            for asked_year, days in asked.items():
                _dates[(countries, int(asked_year))] = frozenset(date.fromisoformat(day) for day in days)
            found = _dates[(countries, year)]
    return found


@lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    # The registry's codes (aliases included), as list_supported_countries() has them, without
    # importing all ~250 country modules to list their subdivisions.
    return frozenset(_ask_holidays({"ask": "codes"}))


def _to_date(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise rules_error(msg.RULES_DATE, value=value)


class BusinessHours(BaseModel):
    """When the team is at work; SLA clocks of rules with business_hours: true run only then."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: StrictStr = "UTC"
    days: tuple[Day, ...] = Field(default=("mon", "tue", "wed", "thu", "fri"), min_length=1)
    hours: StrictStr = "09:00-17:00"
    public_holidays: tuple[StrictStr, ...] = ()
    holidays: tuple[Annotated[date | tuple[int, int], BeforeValidator(_to_holiday)], ...] = ()
    open_on: tuple[Annotated[date, BeforeValidator(_to_date)], ...] = ()

    @field_validator("public_holidays")
    @classmethod
    def _known_countries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        codes = tuple(code.strip().upper() for code in value)
        known = _country_codes()
        for code in codes:
            if code not in known:
                close = difflib.get_close_matches(code, sorted(known), n=1, cutoff=0.5)
                hint = msg.RULES_DID_YOU_MEAN.format(suggestion=close[0]) if close else msg.RULES_COUNTRY_HINT
                raise rules_error(msg.RULES_COUNTRY, value=code, hint=hint)
        return codes

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            close = difflib.get_close_matches(value, _zone_names(), n=1, cutoff=0.8)
            hint = msg.RULES_DID_YOU_MEAN.format(suggestion=close[0]) if close else msg.RULES_TIMEZONE_HINT
            raise rules_error(msg.RULES_TIMEZONE, value=value, hint=hint) from exc
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: str) -> str:
        m = _HOURS_RE.match(value)
        if not m:
            raise rules_error(msg.RULES_HOURS, value=value)
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            raise rules_error(msg.RULES_HOURS, value=value)
        if (h2, m2) <= (h1, m1):
            raise rules_error(msg.RULES_HOURS_ORDER, value=value)
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def opens(self) -> time:
        h, m, _, _ = (int(g) for g in _HOURS_RE.match(self.hours).groups())  # type: ignore[union-attr]
        return time(h, m)

    @property
    def closes_after_open(self) -> timedelta:
        """Length of an open day ("24:00" is allowed as a closing time)."""
        h1, m1, h2, m2 = (int(g) for g in _HOURS_RE.match(self.hours).groups())  # type: ignore[union-attr]
        return timedelta(hours=h2 - h1, minutes=m2 - m1)

    def is_open_day(self, day: date) -> bool:
        return DAYS[day.weekday()] in self.days and not self.is_holiday(day)

    def is_holiday(self, day: date) -> bool:
        if day in self.holidays or (day.month, day.day) in self.holidays:
            return True
        return day in public_holidays(self.public_holidays, day.year) and day not in self.open_on

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The open interval of a local calendar day, in UTC, or None when closed all day."""
        return _window(self, day)


@lru_cache(maxsize=1024)
def _window(hours: BusinessHours, day: date) -> tuple[datetime, datetime] | None:
    # remembered: every case opened with business hours asks for the same few days (~20 µs a day)
    if not hours.is_open_day(day):
        return None
    tz = hours.tz
    start_local = datetime.combine(day, hours.opens, tzinfo=tz)
    # Closing time as wall-clock time too, so a DST change shortens or lengthens that day.
    end_naive = datetime.combine(day, hours.opens) + hours.closes_after_open
    end_local = end_naive.replace(tzinfo=tz)
    return start_local.astimezone(UTC), end_local.astimezone(UTC)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def add_business_time(start: datetime, seconds: int, *, hours: BusinessHours) -> datetime:
    """The moment `seconds` of open time after `start` (in start's timezone).

    Outside opening hours the clock waits: 15 minutes from Saturday noon is
    15 minutes after Monday's opening.  0 seconds gives the next open moment.
    """
    _require_aware(start, "start")
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    remaining = timedelta(seconds=seconds)
    cursor = start.astimezone(UTC)
    day = start.astimezone(hours.tz).date() - timedelta(days=1)  # DST edge: yesterday may still be open
    for _ in range(_MAX_DAYS):
        win = hours.window(day)
        day += timedelta(days=1)
        if win is None:
            continue
        open_at, close_at = win
        if close_at <= cursor:
            continue
        begin = max(open_at, cursor)
        available = close_at - begin
        if remaining <= available:
            return (begin + remaining).astimezone(start.tzinfo)
        remaining -= available
        cursor = close_at
    raise ValueError("the business-hours calendar has no open time within three years")


def business_seconds_between(a: datetime, b: datetime, *, hours: BusinessHours) -> int:
    """Open seconds from a to b (whole seconds, rounded down); negative when b is before a."""
    _require_aware(a, "a")
    _require_aware(b, "b")
    if b < a:
        return -business_seconds_between(b, a, hours=hours)
    a_utc, b_utc = a.astimezone(UTC), b.astimezone(UTC)
    day = a_utc.astimezone(hours.tz).date() - timedelta(days=1)
    last = b_utc.astimezone(hours.tz).date()
    total = timedelta(0)
    while day <= last:
        win = hours.window(day)
        day += timedelta(days=1)
        if win is None:
            continue
        begin, end = max(win[0], a_utc), min(win[1], b_utc)
        if end > begin:
            total += end - begin
    return int(total.total_seconds())
