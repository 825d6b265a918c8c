"""`run --clock-speed N`: the daemon's clock runs N times faster, and its jobs keep pace with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor import messages as m
from monitor.cli import main
from monitor.clock import ScaledClock
from monitor.runtime.wiring import build_daemon
from monitor.settings import Settings

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class Stopwatch:
    """The wall clock's monotonic seconds, moved by hand."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def test_a_fast_clock_runs_n_times_faster_and_can_be_moved_on():
    wall = Stopwatch()
    clock = ScaledClock(60, start=START, monotonic=wall)
    assert clock.now() == START
    wall.seconds += 30  # half a minute on the wall clock
    assert clock.now() == START + timedelta(minutes=30)
    clock.advance(timedelta(hours=1))
    assert clock.now() == START + timedelta(minutes=90)
    assert clock.real_seconds(1800) == 30


@pytest.mark.parametrize("speed", [0, -2])
def test_a_clock_speed_must_be_above_zero(speed, simple_rules_file, capsys):
    with pytest.raises(ValueError):
        ScaledClock(speed)
    assert main(["run", "--rules", str(simple_rules_file), "--clock-speed", str(speed), "--once"]) == 1
    assert m.CLI_CLOCK_SPEED_BAD.format(speed=speed) in capsys.readouterr().err


def test_polls_sweeps_and_leases_keep_pace_with_a_fast_clock(simple_rules, simple_rules_file, tmp_path):
    from monitor.runtime.daemon import LEASE_TTL
    from monitor.runtime.wiring import build_sources

    settings = Settings(_env_file=None)
    clock = ScaledClock(10)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=simple_rules, sandbox_url="http://127.0.0.1:9",
                                              clock=clock).items() if k == "x-mentions"}
    sources["x-mentions"].every = timedelta(hours=1)  # so the first poll is the only one during the test
    daemon = build_daemon(settings=settings, ruleset=simple_rules, rules_path=str(simple_rules_file),
                          db_url=f"sqlite:///{tmp_path / 'mm.db'}", clock=clock, sources=sources, worker="test")
    assert daemon.lease_ttl == LEASE_TTL * 10  # a dead replica still loses its sources after 30 real seconds
    daemon.start()
    try:
        seconds = {job.id: job.trigger.interval.total_seconds() for job in daemon.scheduler.get_jobs()}
    finally:
        daemon.stop()
        daemon.engine.dispose()
    assert seconds["poll:x-mentions"] == 360  # an hour of the fast clock
    assert seconds["sla"] == 1.5  # the sweep's 15 s, in the fast clock's time
    assert seconds["heartbeat"] == 10  # a third of the lease, on the wall clock as before
    assert seconds["outbox"] == 1
