"""The business-hours clock: deadlines wait for the team, across nights, weekends, holidays and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.rules.business_hours import BusinessHours, add_business_time, business_seconds_between

CPH = ZoneInfo("Europe/Copenhagen")
HOURS = BusinessHours(
    timezone="Europe/Copenhagen",
    days=("mon", "tue", "wed", "thu", "fri"),
    hours="08:00-18:00",
    holidays=(date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 31)),
)


def cph(*args: int) -> datetime:
    return datetime(*args, tzinfo=CPH)


@pytest.mark.parametrize(
    ("start", "seconds", "due"),
    [
        (cph(2026, 11, 24, 10, 0), 30 * 60, cph(2026, 11, 24, 10, 30)),  # Tuesday morning: plain
        (cph(2026, 11, 24, 17, 50), 30 * 60, cph(2026, 11, 25, 8, 20)),  # 10 min today, 20 tomorrow
        (cph(2026, 11, 24, 6, 0), 15 * 60, cph(2026, 11, 24, 8, 15)),  # before opening
        (cph(2026, 11, 28, 12, 0), 15 * 60, cph(2026, 11, 30, 8, 15)),  # Saturday -> Monday
        (cph(2026, 11, 27, 17, 0), 2 * 3600, cph(2026, 11, 30, 9, 0)),  # Friday evening over the weekend
        (cph(2026, 12, 23, 17, 0), 2 * 3600, cph(2026, 12, 28, 9, 0)),  # Christmas Eve and Day closed
        (cph(2026, 11, 24, 10, 0), 10 * 3600, cph(2026, 11, 25, 10, 0)),  # exactly one open day
        (cph(2026, 11, 28, 12, 0), 0, cph(2026, 11, 30, 8, 0)),  # zero: the next open moment
    ],
)
def test_add_business_time(start: datetime, seconds: int, due: datetime) -> None:
    assert add_business_time(start, seconds, hours=HOURS) == due


def test_result_keeps_the_callers_timezone() -> None:
    start = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Copenhagen
    due = add_business_time(start, 3600, hours=HOURS)
    assert due.tzinfo is UTC and due == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def test_daylight_saving_keeps_wall_clock_hours() -> None:
    # Friday 27 March 2026 17:30 CET; clocks go forward on Sunday 29 March.
    # 1 h of open time: 30 min on Friday, 30 min from Monday 08:00 CEST.
    due = add_business_time(cph(2026, 3, 27, 17, 30), 3600, hours=HOURS)
    assert due == cph(2026, 3, 30, 8, 30)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 6, 30, tzinfo=UTC)


def test_seconds_between() -> None:
    assert business_seconds_between(cph(2026, 11, 27, 17, 0), cph(2026, 11, 30, 9, 0), hours=HOURS) == 7200
    assert business_seconds_between(cph(2026, 11, 28, 0, 0), cph(2026, 11, 29, 23, 0), hours=HOURS) == 0
    # negative when the deadline is already behind us ("overdue by")
    assert business_seconds_between(cph(2026, 11, 30, 9, 0), cph(2026, 11, 27, 17, 0), hours=HOURS) == -7200


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        add_business_time(datetime(2026, 11, 24, 10, 0), 60, hours=HOURS)


def test_24_hour_days_and_weekends_open() -> None:
    always = BusinessHours(timezone="UTC", days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                           hours="00:00-24:00")
    start = datetime(2026, 11, 28, 23, 0, tzinfo=UTC)
    assert add_business_time(start, 7200, hours=always) == start + timedelta(hours=2)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    seconds=st.integers(min_value=0, max_value=30 * 36000),
)
def test_between_undoes_add(start: datetime, seconds: int) -> None:
    due = add_business_time(start, seconds, hours=HOURS)
    assert due >= start
    # sub-second starts round down, so allow one second
    assert seconds - 1 <= business_seconds_between(start, due, hours=HOURS) <= seconds


@pytest.mark.parametrize("year", [2026, 2027, 2031, 2045])
def test_the_default_rules_keep_their_holidays_in_every_year(year: int) -> None:
    """The shipped calendar never runs out: Danish public holidays are computed for the year asked,
    and the shop's own closed days (12-24, 12-31) recur."""
    from pathlib import Path

    from monitor.rules import load_rules

    hours = load_rules(Path(__file__).resolve().parent.parent / "rules.yaml").business_hours
    closed = {d for d in (date(year, 1, 1) + timedelta(days=n) for n in range(366)) if d.year == year
              and d.weekday() < 5 and not hours.is_open_day(d)}
    assert {date(year, 1, 1), date(year, 12, 24), date(year, 12, 25), date(year, 12, 31)} - {
        d for d in (date(year, 1, 1), date(year, 12, 24), date(year, 12, 25), date(year, 12, 31))
        if d.weekday() >= 5} <= closed
    assert 6 <= len(closed) <= 14  # Easter, Ascension, Whit Monday ... not every weekday


def test_open_on_reopens_a_public_holiday_and_annual_days_recur() -> None:
    hours = BusinessHours(timezone="Europe/Copenhagen", hours="08:00-18:00", public_holidays=("DK",),
                          holidays=("06-05",), open_on=("2027-05-06",))  # Ascension Day 2027 worked
    assert not hours.is_open_day(date(2027, 3, 26))  # Good Friday 2027
    assert hours.is_open_day(date(2027, 5, 6))
    assert not hours.is_open_day(date(2028, 5, 25))  # Ascension Day 2028: open_on named 2027 only
    assert not hours.is_open_day(date(2029, 6, 5))  # 06-05 recurs
    due = add_business_time(cph(2027, 3, 24, 17, 0), 2 * 3600, hours=hours)  # Wed 17:00; Thu, Fri and Mon of Easter closed
    assert due.astimezone(CPH) == cph(2027, 3, 30, 9, 0)
