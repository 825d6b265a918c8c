"""Replicas on one PostgreSQL database split the sources: each takes at most its share, hands the
rest over when another replica starts, and takes them back when that replica dies."""

from __future__ import annotations

from datetime import timedelta

from monitor.runtime.daemon import LEASE_TTL
from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings
from monitor.store import make_engine
from tests.conftest import drop_schema, postgres_url_or_skip
from tests.reliability.helpers import query

SOURCES = ("x-mentions", "x-search", "x-own", "fb-comments", "fb-messages")


def replica(sandbox, url, rules, rules_file, clock, worker):
    settings = Settings(_env_file=None)
    sources = build_sources(settings=settings, ruleset=rules, sandbox_url=sandbox.url, clock=clock)
    return build_daemon(settings=settings, ruleset=rules, rules_path=str(rules_file), db_url=url,
                        sandbox_url=sandbox.url, clock=clock, sources=sources, worker=worker)


def holders(url, clock) -> dict[str, str]:
    """Who holds each source's lease now (the lease table stores naive UTC)."""
    rows = query(url, "select name, holder from lease where name like 'source:%' and holder <> '' "
                      "and expires_at > :now", now=clock.now().replace(tzinfo=None))
    return {name.removeprefix("source:"): holder for name, holder in rows}


def polled_by(daemon) -> set[str]:
    return {name for name in SOURCES if daemon.poll(name).status != "skipped"}


def test_a_second_replica_gets_its_share_and_the_survivor_takes_all_back(sandbox, simple_rules, simple_rules_file,
                                                                         clock):
    url = postgres_url_or_skip()
    engine = make_engine(url)
    drop_schema(engine)
    engine.dispose()
    a = replica(sandbox, url, simple_rules, simple_rules_file, clock, "replica-a")
    a.heartbeat()
    assert polled_by(a) == set(SOURCES), "alone, a replica polls every source"

    b = replica(sandbox, url, simple_rules, simple_rules_file, clock, "replica-b")
    b.heartbeat()  # b announces itself; a still holds everything
    a.heartbeat()  # a sees two replicas: keeps 3, hands 2 over
    b.heartbeat()
    split = holders(url, clock)
    assert sorted(split.values()) == ["replica-a"] * 3 + ["replica-b"] * 2
    assert polled_by(a) <= {s for s, who in split.items() if who == "replica-a"}, "a polls only its share"

    clock.advance(LEASE_TTL + timedelta(seconds=1))  # b dies without a word: its leases expire
    a.heartbeat()
    assert set(holders(url, clock).items()) == {(s, "replica-a") for s in SOURCES}
    a.engine.dispose()
    b.engine.dispose()


def test_three_replicas_take_at_most_two_of_the_five_sources_each(sandbox, simple_rules, simple_rules_file, clock):
    url = postgres_url_or_skip()
    engine = make_engine(url)
    drop_schema(engine)
    engine.dispose()
    daemons = [replica(sandbox, url, simple_rules, simple_rules_file, clock, f"replica-{n}") for n in "abc"]
    for daemon in daemons:  # they start one after the other: the first takes all, then hands over
        daemon.heartbeat()
        polled_by(daemon)
    for _ in range(2):  # a heartbeat each to see the others, release the surplus and take what is free
        for daemon in daemons:
            daemon.heartbeat()
    split = holders(url, clock)
    assert set(split) == set(SOURCES)
    assert sorted(list(split.values()).count(d.worker) for d in daemons) == [1, 2, 2], split
    for daemon in daemons:
        daemon.engine.dispose()
