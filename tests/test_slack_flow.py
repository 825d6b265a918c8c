"""Alerts end to end: sandbox X API -> tweepy -> pipeline -> outbox -> slack-sdk -> sandbox Slack."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.model import Case
from monitor.runtime.wiring import build_daemon, build_sources
from monitor.settings import Settings


@pytest.fixture
def daemon(sandbox, db_url, simple_rules, simple_rules_file, clock):
    # these tests poll on their own schedule: X's read limit would pace polls 64 s apart
    sandbox.configure(slack_burst=1000, x_limits={"mentions": (100_000, 900)})
    settings = Settings(_env_file=None)
    sources = build_sources(settings=settings, ruleset=simple_rules, sandbox_url=sandbox.url, clock=clock)
    sources = {k: v for k, v in sources.items() if k in ("x-mentions", "x-own")}
    d = build_daemon(settings=settings, ruleset=simple_rules, rules_path=str(simple_rules_file), db_url=db_url,
                     sandbox_url=sandbox.url, clock=clock, sources=sources, worker="test")
    yield d
    d.engine.dispose()


def author_id(handle: str) -> str:
    return str(700_000 + sum(ord(c) * (i + 1) for i, c in enumerate(handle)))


def tweet(sandbox, clock, n: int, text: str, *, author: str = "anna", conversation: str = "", offset_s: int = 0):
    tid = str(1_900_000_000_000_000_000 + n)
    when = (clock.now() + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sandbox.add_tweets([{
        "tweet": {"id": tid, "text": text, "author_id": author_id(author), "created_at": when,
                  "conversation_id": conversation or tid, "lang": "en"},
        "author": {"id": author_id(author), "username": author, "name": author.title(),
                   "public_metrics": {"followers_count": 321}, "verified": False},
    }])
    return tid


def top_level(sandbox, channel: str = "cs-alerts"):
    return [m for m in sandbox.slack_messages() if m["op"] == "post" and not m["thread_ts"]
            and m["channel"] == channel]


def thread(sandbox, ts: str):
    return [m for m in sandbox.slack_messages() if m["op"] == "post" and m["thread_ts"] == ts]


def test_urgent_mention_gives_one_alert_with_deadline_and_buttons_and_followup_goes_to_thread(sandbox, daemon, clock):
    first = tweet(sandbox, clock, 1, "@nordlysshop my lamp arrived broken and I want a refund")
    daemon.poll("x-mentions")
    daemon.drain()
    alerts = top_level(sandbox)
    assert len(alerts) == 1
    alert = alerts[0]
    # 09:00 UTC is 10:00 in Copenhagen; the rule's SLA is 30 minutes
    assert "respond by 10:30, 30 min left" in str(alert["blocks"])
    actions = [e["action_id"] for b in alert["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert {"mm_claim", "mm_ack", "mm_reply", "mm_resolve"} <= set(actions)
    assert "my lamp arrived broken and I want a refund" in str(alert["blocks"])

    tweet(sandbox, clock, 2, "@nordlysshop hello?? still waiting for an answer", conversation=first, offset_s=60)
    clock.advance(60)
    daemon.poll("x-mentions")
    daemon.drain()
    assert len(top_level(sandbox)) == 1, "a follow-up must not open a second alert"
    replies = thread(sandbox, alert["ts"])
    assert any("Follow-up from @anna" in m["text"] and "still waiting for an answer" in m["text"] for m in replies)


def test_warning_breach_and_escalation_each_happen_once_at_the_right_moment(sandbox, daemon, clock):
    tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late")
    daemon.poll("x-mentions")
    daemon.drain()
    alert = top_level(sandbox)[0]

    clock.advance(timedelta(minutes=22))  # 73% of 30 min: too early to warn
    daemon.sweep()
    daemon.drain()
    assert not [m for m in thread(sandbox, alert["ts"]) if "left to answer" in m["text"]]

    clock.advance(timedelta(seconds=40))  # 75.5%
    for _ in range(3):  # however often the sweep runs, the warning is posted once
        daemon.sweep()
        daemon.drain()
    warnings = [m["text"] for m in thread(sandbox, alert["ts"]) if "left to answer" in m["text"]]
    assert warnings == ["<!subteam^S0ONCALL> 7 min left to answer this one (75% of the response-time target used)."]

    clock.advance(timedelta(minutes=8))  # past due
    for _ in range(3):
        daemon.sweep()
        daemon.drain()
    breaches = [m["text"] for m in thread(sandbox, alert["ts"]) if "target was missed" in m["text"]]
    # each reader sees the due time in their own time zone; 10:30 Copenhagen is the fallback
    due = int((clock.now() - timedelta(seconds=40)).timestamp())  # opened 30 min 40 s ago, a 30 min target
    assert breaches == [f"<!subteam^S0ONCALL> the response-time target was missed: due "
                        f"<!date^{due}^{{date_short_pretty}} {{time}}|10:30>, nobody has answered yet."]
    escalations = top_level(sandbox, "cs-escalations")
    assert len(escalations) == 1 and escalations[0]["text"].startswith("<!subteam^S0CSLEADS> escalation step 1")
    permalink = f"https://nordlys.slack.com/archives/cs-alerts/p{alert['ts'].replace('.', '')}"
    assert escalations[0]["text"].endswith(f"<{permalink}|Open the alert>")  # chat.getPermalink of the alert

    clock.advance(timedelta(minutes=31))
    daemon.sweep()
    daemon.drain()
    escalations = top_level(sandbox, "cs-escalations")
    assert len(escalations) == 2 and escalations[1]["text"].startswith("<@U0HEADOFCS> escalation step 2")


def test_business_hours_clock_stops_overnight(sandbox, daemon, clock):
    # Tuesday 17:30 in Copenhagen (16:30 UTC); the rule has a 1 h SLA on business hours 08:00-18:00
    clock.set(clock.now().replace(hour=16, minute=30))
    tweet(sandbox, clock, 1, "@nordlysshop the invoice is wrong")
    daemon.poll("x-mentions")
    daemon.drain()
    with Session(daemon.engine) as s:
        case = s.exec(select(Case)).one()
    # 30 minutes on Tuesday, 30 on Wednesday morning: due 08:30 Copenhagen = 07:30 UTC
    assert case.sla_due_at == clock.now().replace(hour=7, minute=30) + timedelta(days=1)
    clock.advance(timedelta(hours=2))  # 20:30 in Copenhagen: the clock has not run since 18:00
    daemon.sweep()
    daemon.drain()
    alert = top_level(sandbox)[0]
    assert not [m for m in thread(sandbox, alert["ts"]) if "missed" in m["text"]]


def test_fifty_negatives_on_one_topic_give_four_channel_messages_and_every_case_a_line(sandbox, daemon, clock):
    for n in range(50):
        tweet(sandbox, clock, n, f"@nordlysshop order {n} arrived broken!!", author=f"user{n}", offset_s=n * 2)
    clock.advance(100)
    for _ in range(3):
        daemon.poll("x-mentions")
        daemon.drain()
    # max_alerts 3 (docs/rules.md): three alerts alone, then the grouped message
    assert len(top_level(sandbox)) == 4
    with Session(daemon.engine) as s:
        assert s.exec(select(sa.func.count()).select_from(Case)).one() == 50
    grouped = [m for m in top_level(sandbox) if "similar mentions" in str(m["blocks"]) + m["text"]]
    assert grouped, "the storm should be summarised in one grouped message"
    # every grouped case has its line at once: several to a thread message, not one message each
    lines = " ".join(str(m["blocks"]) for m in thread(sandbox, grouped[0]["ts"]))
    assert all(f"*#{case_id}*" in lines for case_id in range(4, 51))
    assert len(thread(sandbox, grouped[0]["ts"])) < 10
    posted = len([m for m in sandbox.slack_messages() if m["op"] == "post"])
    assert sandbox.stats()["requests"]["POST /api/chat.postMessage"] == posted, "a request was refused"


@pytest.mark.parametrize("hostile", ["<!channel> refund NOW", "<!here> broken", "<@U123> broken lamp",
                                     "@channel @here broken", "<https://evil.example|click> broken"])
def test_hostile_text_never_pings(sandbox, daemon, clock, hostile):
    tweet(sandbox, clock, 1, f"@nordlysshop {hostile}")
    daemon.poll("x-mentions")
    daemon.drain()
    received = [str(m["text"]) + str(m["blocks"]) for m in sandbox.slack_messages()]
    assert received
    for text in received:
        assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
        assert "<https://evil.example" not in text


def test_metrics_move_when_the_daemon_works(sandbox, daemon, clock):
    import urllib.request

    from monitor.runtime.metrics import HealthCheck, Metrics

    daemon.metrics = Metrics()
    server = daemon.metrics.serve(port=0, host="127.0.0.1", health=HealthCheck(
        metrics=daemon.metrics, engine=daemon.engine, intervals={n: b.every for n, b in daemon.sources.items()},
        now=clock.now, started_at=clock.now()))
    try:
        tweet(sandbox, clock, 1, "@nordlysshop my lamp arrived broken")
        tweet(sandbox, clock, 2, "@nordlysshop lovely lamp, thanks", author="bo")
        daemon.poll("x-mentions")
        daemon.drain()
        daemon.sweep()
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
        health = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    finally:
        server.stop()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line and not line.startswith("#")}
    ingested = [v for k, v in samples.items() if k.startswith("mention_monitor_mentions_ingested_total")]
    alerts = [v for k, v in samples.items() if k.startswith("mention_monitor_alerts_total")]
    assert ingested == [2.0]
    assert alerts == [1.0]
    assert health.status == 200


def test_resolved_case_reopens_on_a_new_negative_followup(sandbox, daemon, clock):
    from monitor.cases.actions import CaseActions

    first = tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late")
    daemon.poll("x-mentions")
    daemon.drain()
    actions = CaseActions(engine=daemon.engine, rules=lambda: daemon.ruleset, clock=clock)
    with Session(daemon.engine) as s:
        case_id = s.exec(select(Case)).one().id
    assert actions.resolve(case_id=case_id, user="U0AGENT").changed
    assert not actions.resolve(case_id=case_id, user="U0AGENT").changed  # a double click is one action
    daemon.drain()

    clock.advance(timedelta(hours=3))
    tweet(sandbox, clock, 2, "@nordlysshop thanks!", conversation=first)  # not negative: stays resolved
    daemon.poll("x-mentions")
    daemon.drain()
    with Session(daemon.engine) as s:
        assert s.exec(select(Case)).one().state == "resolved"

    clock.advance(timedelta(hours=1))
    tweet(sandbox, clock, 3, "@nordlysshop the parcel is late AGAIN, where is my order", conversation=first)
    daemon.poll("x-mentions")
    daemon.drain()
    with Session(daemon.engine) as s:
        case = s.exec(select(Case)).one()
        assert case.state == "open" and case.resolved_at is None
        assert case.sla_due_at == clock.now() + timedelta(minutes=30)
    alert = top_level(sandbox)[0]
    assert len(top_level(sandbox)) == 1
    reopened = [m for m in thread(sandbox, alert["ts"]) if m["text"].startswith("Case reopened")]
    assert len(reopened) == 1 and "AGAIN, where is my order" in reopened[0]["text"]
    assert "<@U0AGENT> resolved this case." in [m["text"] for m in thread(sandbox, alert["ts"])]


def test_a_reply_by_the_brand_on_x_counts_as_the_first_response(sandbox, daemon, clock):
    first = tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late")
    daemon.poll("x-mentions")
    daemon.drain()
    clock.advance(timedelta(minutes=12))
    when = clock.now().strftime("%Y-%m-%dT%H:%M:%S.000Z")
    sandbox.add_tweets([{
        "tweet": {"id": "1900000000000000099", "text": "@anna @nordlysshop so sorry, checking with the carrier now",
                  "author_id": "1600000000000000001", "created_at": when, "conversation_id": first,
                  "referenced_tweets": [{"type": "replied_to", "id": first}]},
        "author": {"id": "1600000000000000001", "username": "nordlysshop", "name": "Nordlys Shop"},
    }])
    daemon.poll("x-own")
    daemon.drain()
    with Session(daemon.engine) as s:
        case = s.exec(select(Case)).one()
        assert case.first_response_at == clock.now()
        assert case.first_response_at - case.opened_at == timedelta(minutes=12)
    alert = top_level(sandbox)[0]
    assert any(m["text"].startswith("The brand answered on x") for m in thread(sandbox, alert["ts"]))
    clock.advance(timedelta(minutes=30))
    daemon.sweep()
    daemon.drain()
    assert not [m for m in thread(sandbox, alert["ts"]) if "missed" in m["text"]]  # answered in time


def test_a_volume_spike_raises_one_spike_alert(sandbox, db_url, simple_rules_file, clock):
    from monitor.rules import parse_rules
    from tests.conftest import SIMPLE_RULES

    rules = parse_rules(SIMPLE_RULES.replace(
        "grouping: {window: 2m, max_alerts: 3}",
        "grouping: {window: 2m, max_alerts: 3}\nspike: {window: 15m, history: 3h, k: 3, min_count: 10, channel: alerts}"))
    sandbox.configure(slack_burst=1000, x_limits={"mentions": (100_000, 900)})  # two polls in one instant
    settings = Settings(_env_file=None)
    sources = {k: v for k, v in build_sources(settings=settings, ruleset=rules, sandbox_url=sandbox.url, clock=clock).items()
               if k == "x-mentions"}
    daemon = build_daemon(settings=settings, ruleset=rules, rules_path=str(simple_rules_file), db_url=db_url,
                          sandbox_url=sandbox.url, clock=clock, sources=sources, worker="test")
    for n in range(12):  # a quiet history: one mention every 15 minutes for three hours
        tweet(sandbox, clock, 100 + n, "@nordlysshop nice lamps", author=f"fan{n}", offset_s=-(12 - n) * 900 - 60)
    daemon.poll("x-mentions")
    daemon.sweep()
    daemon.drain()
    assert not [m for m in top_level(sandbox) if "spike" in m["text"].lower()]
    for n in range(25):
        tweet(sandbox, clock, 200 + n, "@nordlysshop is the site down?", author=f"user{n}", offset_s=-n * 20)
    daemon.poll("x-mentions")
    for _ in range(3):
        daemon.sweep()
        daemon.drain()
    spikes = [m["text"] for m in top_level(sandbox) if "spike" in m["text"].lower()]
    assert spikes == [":chart_with_upwards_trend: Mention spike: 25 mentions in the last 15 min "
                      "(usually 1.0 ± 0.0). Something may be going on. Mostly about: question (25)."
                      "\n>@user24: @nordlysshop is the site down?\n>@user23: @nordlysshop is the site down?"]


def test_a_forgotten_alert_counts_down_in_steps_and_costs_few_updates_a_day(sandbox, daemon, clock):
    """Every chat.update counts against Slack's Tier 3 limit: a case nobody answers for a day must
    not be re-rendered every minute, yet the countdown must move near the deadline."""
    tweet(sandbox, clock, 1, "@nordlysshop where is my parcel? it is late")
    daemon.poll("x-mentions")
    daemon.drain()
    alert = top_level(sandbox)[0]

    def updates() -> list[str]:
        return [str(m["blocks"]) for m in sandbox.slack_messages() if m["op"] == "update" and m["ts"] == alert["ts"]]

    elapsed = 0
    while elapsed < 24 * 60:
        step = 1 if elapsed < 90 else 10  # every minute around the deadline, every 10 minutes after
        clock.advance(timedelta(minutes=step))
        elapsed += step
        daemon.sweep()
        daemon.drain()
        if elapsed == 25:
            assert "5 min left" in updates()[-1] or "6 min left" in updates()[-1]
    assert "overdue by" in updates()[-1]
    print(f"\nforgotten alert: {len(updates())} chat.update calls in 24 h")
    assert 15 <= len(updates()) <= 25, len(updates())
