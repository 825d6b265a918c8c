"""Silences: mute an author, a keyword or a rule, from rules.yaml and from Slack; never VIP or critical
unless the silence says so; muted mentions are stored and counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from connectors.slack.app import build_app
from monitor import messages as m
from monitor.cases import pipeline
from monitor.cases.actions import CaseActions
from monitor.model import Author, Case, Event, Mention, Mute, MutedMention, NewMention, Outbox, OutboxKind
from monitor.rules import RulesError, parse_rules
from monitor.store import create_schema, make_engine
from tests.test_slack_app import SECRET, TOKEN, click, command, signed

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "rules.yaml").read_text(encoding="utf-8")
COMPLAINT = "@nordlysshop my lamp arrived broken, I want a refund now. Terrible!"


def with_silences(block: str):  # type: ignore[no-untyped-def]
    return parse_rules(SHIPPED + "\nsilences:\n" + block, filename="rules.yaml")


def post(n: int, *, author: str = "spam_sven", text: str = COMPLAINT, followers: int = 150, at=None) -> NewMention:  # type: ignore[no-untyped-def]
    external = str(1863000000000000000 + n)
    return NewMention(platform="x", kind="mention", external_id=external, text=text, created_at=at,
                      author=Author(id=f"id-{author}", handle=author, followers=followers), mentions_brand=True,
                      url=f"https://x.com/{author}/status/{external}")


def alerts(engine) -> list[Outbox]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return list(s.exec(select(Outbox).where(Outbox.kind == OutboxKind.ALERT)).all())


def muted_rows(engine) -> list[tuple[int, str, str]]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return [(r.mention_id, r.rule, r.silence) for r in s.exec(select(MutedMention).order_by(
            MutedMention.mention_id)).all()]


# --------------------------------------------------------------------------- rules.yaml


SILENCE_LINE = len(SHIPPED.splitlines()) + 3  # 1-based line of the first silence below


@pytest.mark.parametrize(("block", "errors"), [
    pytest.param('  - {match: {author: "@spam_sven"}, for: 4h}\n',
                 [f"rules.yaml:{SILENCE_LINE}:5: silences[0]: `for:` needs `from:` (when the silence starts) in "
                  "rules.yaml; write `until: 2026-12-24T18:00:00Z`, or mute from Slack: "
                  "`/mentions mute author @name 4h`"], id="for-without-from"),
    pytest.param("  - {match: {}, until: 2026-12-24T18:00:00Z}\n",
                 [f"rules.yaml:{SILENCE_LINE}:13: silences[0].match: silence match needs at least one of: "
                  "author, keyword, rule"], id="empty-match"),
    pytest.param("  - {match: {keyword: giveaway}, until: 2026-12-24T18:00:00}\n",
                 [f"rules.yaml:{SILENCE_LINE}:41: silences[0].until: '2026-12-24T18:00:00' has no time zone; "
                  "write it like 2026-12-24T18:00:00Z or 2026-12-24T19:00:00+01:00"], id="no-time-zone"),
    pytest.param("  - {match: {rule: possible-complaynt}, until: 2026-12-24T18:00:00Z}\n"
                 "  - {match: {authr: x}, until: 2026-12-24T18:00:00Z, include_vip: yes}\n",
                 [f"rules.yaml:{SILENCE_LINE}:20: silences[0] mutes rule 'possible-complaynt', which is not "
                  "defined; did you mean 'possible-complaint'?",
                  f"rules.yaml:{SILENCE_LINE + 1}:14: unknown key 'authr' in silences[1].match; did you mean 'author'?",
                  f"rules.yaml:{SILENCE_LINE + 1}:67: silences[1].include_vip: expected true or false, got 'yes'"],
                 id="unknown-rule-and-keys"),
    pytest.param("  - {match: {author: x}, from: 2026-12-24T18:00:00Z, until: 2026-12-24T08:00:00Z}\n",
                 [f"rules.yaml:{SILENCE_LINE}:5: silences[0]: the silence ends (2026-12-24 08:00 UTC) before it "
                  "starts (2026-12-24 18:00 UTC)"], id="ends-before-it-starts"),
])
def test_broken_silences_are_reported_with_line_and_column(block: str, errors: list[str]) -> None:
    with pytest.raises(RulesError) as raised:
        with_silences(block)
    assert raised.value.errors == errors


def test_rules_yaml_silence_mutes_the_author_until_it_ends_but_never_vip(engine, clock) -> None:  # type: ignore[no-untyped-def]
    now = clock.now()
    rules = with_silences(f'  - {{match: {{author: "@Spam_Sven"}}, until: {(now + timedelta(hours=4)).isoformat()}, '
                          "comment: giveaway bot}\n")
    muted = pipeline.ingest(engine, source="x-mentions", batch=[post(1, at=now)], cursor=None, ruleset=rules, now=now)
    assert (muted.stored, muted.muted, muted.cases_opened, muted.alerts, muted.acks_queued) == (1, 1, 0, 0, 0)
    assert muted_rows(engine) == [(muted.stored_ids[0], "urgent-complaint", "author @Spam_Sven")]
    with Session(engine) as s:
        assert s.get(Mention, muted.stored_ids[0]).rule == "urgent-complaint"  # type: ignore[union-attr]

    vip = pipeline.ingest(engine, source="x-mentions", batch=[post(2, followers=25_000, at=now)], cursor=None,
                          ruleset=rules, now=now)
    assert (vip.muted, vip.cases_opened) == (0, 1)  # vip-complaint is critical: still comes through

    later = now + timedelta(hours=4, seconds=1)
    after = pipeline.ingest(engine, source="x-mentions", batch=[post(3, at=later)], cursor=None, ruleset=rules,
                            now=later)
    assert (after.muted, after.cases_opened) == (0, 1)
    assert len(alerts(engine)) == 2


def test_include_vip_and_keyword_and_rule_silences(engine, clock) -> None:  # type: ignore[no-untyped-def]
    now = clock.now()
    until = (now + timedelta(hours=1)).isoformat()
    rules = with_silences(f"  - {{match: {{keyword: giveaway, author: spam_sven}}, until: {until}, include_vip: true}}\n"
                          f"  - {{match: {{rule: possible-complaint}}, until: {until}}}\n")
    batch = [post(1, text="@nordlysshop giveaway scam, refund me, terrible broken lamp", followers=25_000, at=now),
             post(2, text=COMPLAINT, at=now),  # spam_sven without the keyword: alerts
             post(3, author="bo", text="@nordlysshop the delivery was late again, not happy", at=now)]
    result = pipeline.ingest(engine, source="x-mentions", batch=batch, cursor=None, ruleset=rules, now=now)
    assert (result.stored, result.muted, result.cases_opened) == (3, 2, 1)
    assert [(rule, silence) for _, rule, silence in muted_rows(engine)] == [
        ("vip-complaint", "author spam_sven, keyword 'giveaway' (VIP and critical too)"),
        ("possible-complaint", "rule possible-complaint")]


def test_create_schema_adds_the_silence_tables_to_an_existing_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    from monitor.migrations import baseline_metadata

    released = baseline_metadata()  # the tables as a release before migrations made them
    released.create_all(engine, tables=[t for name, t in released.tables.items() if name not in ("mute", "mutedmention")])
    with Session(engine) as s:
        s.add(Mention(platform="x", kind="mention", external_id="1", text="kept"))
        s.commit()
    assert "mute" not in sa.inspect(engine).get_table_names()
    create_schema(engine)
    assert {"mute", "mutedmention"} <= set(sa.inspect(engine).get_table_names())
    with Session(engine) as s:
        assert [x.text for x in s.exec(select(Mention)).all()] == ["kept"]


# --------------------------------------------------------------------------- Slack


@pytest.fixture()
def slack(engine, clock, sandbox):  # type: ignore[no-untyped-def]
    rules = with_silences(f"  - {{match: {{keyword: airdropz}}, until: {(clock.now() + timedelta(days=2)).isoformat()}, "
                          "comment: crypto wave}\n")
    first = pipeline.ingest(engine, source="x-mentions", batch=[post(1, author="angry_anna", at=clock.now())],
                            cursor=None, ruleset=rules, now=clock.now())
    assert first.cases_opened == 1
    actions = CaseActions(engine=engine, rules=lambda: rules, clock=clock)
    app = build_app(token=TOKEN, actions=actions, signing_secret=SECRET, base_url=sandbox.url,
                    approvers=["U0APPROVER1"], clock=clock, process_before_response=True)
    return app, rules


def test_mute_menu_on_an_alert_mutes_the_author_for_four_hours(slack, engine, clock, sandbox) -> None:  # type: ignore[no-untyped-def]
    app, rules = slack
    with Session(engine) as s:
        case_id = s.exec(select(Case.id)).one()
    assert click(app, "mm_mute", user="U0CLAIMER", value=f"{case_id}:author", selected=True).status == 200
    until = clock.now() + timedelta(hours=4)
    [(who, text)] = [(x["recipient"], x["text"]) for x in sandbox.slack_messages() if x["op"] == "ephemeral"]
    assert who == "U0CLAIMER"
    assert text == ("Muted author @angry_anna until 14:00: matching mentions are still stored and counted, but raise "
                    "no alert; VIP and critical alerts still come through. `/mentions unmute 1` lifts it.")
    with Session(engine) as s:
        [mute] = s.exec(select(Mute)).all()
        assert (mute.author, mute.created_by, mute.until) == ("@angry_anna", "U0CLAIMER", until)
        [event] = s.exec(select(Event).where(Event.kind == "muted")).all()
        assert (event.case_id, event.actor) == (case_id, "U0CLAIMER")

    again = pipeline.ingest(engine, source="x-mentions", batch=[post(2, author="angry_anna", at=clock.now())],
                            cursor=None, ruleset=rules, now=clock.now())
    assert (again.stored, again.muted, again.cases_opened, again.alerts) == (1, 1, 0, 0)
    assert muted_rows(engine)[-1][2] == "author @angry_anna"
    stats = json.loads(command(app, "stats").body)["text"]
    assert "• Muted (stored, no alert): *1*" in stats

    clock.advance(timedelta(hours=4))
    expired = pipeline.ingest(engine, source="x-mentions", batch=[post(3, author="angry_anna", at=clock.now())],
                              cursor=None, ruleset=rules, now=clock.now())
    assert (expired.muted, expired.cases_opened) == (0, 1)


def test_mentions_mute_command_lists_and_lifts_and_app_home_shows_them(slack, engine, clock, sandbox) -> None:  # type: ignore[no-untyped-def]
    app, rules = slack
    said = json.loads(command(app, 'mute keyword "free lamp" 2h launch day noise').body)
    assert said["response_type"] == "ephemeral"
    assert said["text"].startswith("Muted keyword 'free lamp' until 12:00: matching mentions")
    wrong = json.loads(command(app, "mute rule possible-complaynt 30m").body)
    assert wrong["text"] == "rules.yaml has no rule 'possible-complaynt'. Did you mean 'possible-complaint'?"
    assert json.loads(command(app, "mute author @x soon").body)["text"] == \
        "'soon' is not a duration: write 30m, 4h or 1d."
    assert json.loads(command(app, "mute author @x 30d").body)["text"] == m.SLACK_MUTE_TOO_LONG.format(limit="7 days")
    assert json.loads(command(app, "mute").body)["text"] == m.SLACK_MUTE_HELP

    listed = json.loads(command(app, "mutes").body)
    assert listed["text"] == "*2 silence(s) in force*"
    assert listed["blocks"][1]["text"]["text"] == (
        "#1 · keyword 'free lamp' · until 12:00 · by <@U0CLAIMER> · launch day noise\n"
        "keyword 'airdropz' · until Thu 26 Nov 10:00 · rules.yaml · crypto wave")

    body = json.dumps({"token": "legacy", "team_id": "T0SANDBOX1", "api_app_id": "A0APP", "type": "event_callback",
                       "event_id": "Ev0HOME", "event_time": 1700000000,
                       "event": {"type": "app_home_opened", "user": "U0CLAIMER", "channel": "D0HOME", "tab": "home",
                                 "event_ts": "1700000000.1"}})
    assert app.dispatch(signed(body, "application/json")).status == 200
    [home] = sandbox.slack_views()
    shown = json.dumps(home["blocks"], ensure_ascii=False)
    assert "*Muted*" in shown and "#1 · keyword 'free lamp' · until 12:00 · by <@U0CLAIMER>" in shown

    free = pipeline.ingest(engine, source="x-mentions", batch=[post(5, author="bo", text=(
        "@nordlysshop where is my FREE lamp, terrible, still broken, refund"), at=clock.now())], cursor=None,
        ruleset=rules, now=clock.now())
    assert free.muted == 1
    lifted = json.loads(command(app, "unmute 1").body)
    assert lifted["text"] == "Lifted mute #1 (keyword 'free lamp')."
    assert json.loads(command(app, "unmute 1").body)["text"] == "No active mute #1. `/mentions mutes` lists them."
    assert json.loads(command(app, "mutes").body)["text"] == "*1 silence(s) in force*"
    with Session(engine) as s:
        [mute] = s.exec(select(Mute)).all()
        assert (mute.lifted_by, mute.lifted_at) == ("U0CLAIMER", clock.now())
    assert datetime(2026, 11, 24, 9, 0, tzinfo=UTC) == clock.now()  # the times above are Copenhagen's (UTC+1)
