"""`mention-monitor backtest`: an edit of rules.yaml replayed over stored mentions, the diff a person acts on."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from monitor.cases import pipeline
from monitor.cli import main
from monitor.model import Author, Case, Mention, NewMention, Outbox

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules.yaml"

POSTS = [  # (author, text): triage puts the first and last in urgent-complaint, the middle two in possible
    ("anna", "@nordlysshop my lamp arrived broken, I want a refund now. Terrible!"),
    ("bo", "@nordlysshop still no answer about my delivery"),  # complaint 0.85: below auto (0.94)
    ("carl", "@nordlysshop the delivery was late again, not happy"),
    ("dora", "@nordlysshop love the new lamp"),
    ("emil", "@nordlysshop worst shop ever, my order never arrived and nobody answers. never again"),
]


def _post(n: int, author: str, text: str, at) -> NewMention:  # type: ignore[no-untyped-def]
    external = str(1862000000000000000 + n)
    return NewMention(platform="x", kind="mention", external_id=external, text=text, created_at=at,
                      author=Author(id=f"u{n}", handle=author, followers=150), mentions_brand=True,
                      url=f"https://x.com/{author}/status/{external}")


def _edited(tmp_path: Path, *replacements: tuple[str, str]) -> str:
    text = RULES.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "rules-new.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["backtest", *args]) == 0
    return capsys.readouterr().out


@pytest.fixture()
def history(engine, ruleset, clock):  # type: ignore[no-untyped-def]
    start = clock.now() - timedelta(days=3)
    batch = [_post(n, author, text, start + timedelta(hours=n)) for n, (author, text) in enumerate(POSTS)]
    pipeline.ingest(engine, source="x-mentions", batch=batch, cursor=None, ruleset=ruleset, now=clock.now())
    return engine


URGENT_APPROVE = ("acknowledge: {template: move_to_dm, private_template: dm_opening, mode: auto}",
                  "acknowledge: {template: move_to_dm, private_template: dm_opening, mode: approve}")
POSSIBLE_TO_VIP = ("alert: {channel: alerts, severity: normal, sla: 1h, business_hours: false, group_by: topic}",
                   "alert: {channel: vip, severity: normal, sla: 4h, business_hours: false, group_by: topic}")


def test_backtest_json_lists_alerts_replies_and_sla_targets_that_change(history, db_url, clock, tmp_path,  # type: ignore[no-untyped-def]
                                                                       capsys) -> None:
    new = _edited(tmp_path, URGENT_APPROVE, POSSIBLE_TO_VIP)
    before = _db_state(history, db_url)
    out = json.loads(_run(capsys, "--rules", new, "--against", str(RULES), "--db", db_url, "--since", "30d",
                          "--until", clock.now().isoformat(), "--format", "json"))
    assert _db_state(history, db_url) == before  # nothing written
    assert out["mentions"] == 5
    assert out["current"] == {"alerts": 4, "grouped": 0, "dropped": 0, "auto_replies": 2, "muted": 0, "rules": str(RULES)}
    assert out["proposed"] == {"alerts": 4, "grouped": 0, "dropped": 0, "auto_replies": 0, "muted": 0, "rules": new}
    gained, lost = out["alerts"]["gained"], out["alerts"]["lost"]
    assert [(g["rule"], g["channel"], g["count"]) for g in gained] == [("possible-complaint", "#cs-vip", 2)]
    assert [(g["rule"], g["channel"], g["count"]) for g in lost] == [("possible-complaint", "#cs-alerts", 2)]
    assert [(e["author"], e["text"]) for e in gained[0]["examples"]] == [("@bo", POSTS[1][1]), ("@carl", POSTS[2][1])]
    assert gained[0]["examples"][0]["url"].startswith("https://x.com/bo/status/")
    assert out["auto_replies"]["gained"] == []
    assert [(r["rule"], r["count"], [e["author"] for e in r["examples"]]) for r in out["auto_replies"]["lost"]] \
        == [("urgent-complaint", 2, ["@anna", "@emil"])]
    [sla] = out["sla_changes"]
    assert (sla["from"], sla["to"], sla["count"]) == (
        {"rule": "possible-complaint", "sla": "1h", "business_hours": False},
        {"rule": "possible-complaint", "sla": "4h", "business_hours": False}, 2)
    assert out["changed"] is True


def test_backtest_table_shows_the_diff_and_an_unchanged_edit_says_so(history, db_url, clock, tmp_path,  # type: ignore[no-untyped-def]
                                                                     capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    new = _edited(tmp_path, URGENT_APPROVE, POSSIBLE_TO_VIP)
    shown = _run(capsys, "--rules", new, "--against", str(RULES), "--db", db_url, "--until", clock.now().isoformat())
    lines = [line.rstrip() for line in shown.splitlines()]
    assert lines[0].startswith(f"Backtest of {new} against {RULES}: 5 stored mentions, ")
    assert any(line.split() == ["Automatic", "public", "replies", "2", "0"] for line in lines)
    assert "Alerts gained (2)" in shown and "Alerts lost (2)" in shown
    assert any("possible-complaint" in line and "#cs-vip" in line and "#2 @bo: @nordlysshop still no answer" in line
               for line in lines)
    assert "Automatic public replies lost (2)" in shown
    assert any("possible-complaint: 1h" in line and "possible-complaint: 4h" in line for line in lines)

    same = _run(capsys, "--rules", str(RULES), "--against", str(RULES), "--db", db_url,
                "--until", clock.now().isoformat())
    assert "No difference: over these mentions the edit raises, groups and answers exactly the same." in same


def _ingest_burst(engine, ruleset, clock) -> None:  # type: ignore[no-untyped-def]
    """Five broken-lamp complaints from five buyers an hour ago, 10 s apart, through the real pipeline."""
    at = clock.now() - timedelta(hours=1)
    burst = [_post(10 + n, f"buyer{n}", f"@nordlysshop my lamp arrived broken, refund please #{n}",
                   at + timedelta(seconds=10 * n)) for n in range(5)]
    pipeline.ingest(engine, source="x-mentions", batch=burst, cursor=None, ruleset=ruleset, now=clock.now())


def test_backtest_replays_storm_control_like_the_pipeline(engine, db_url, ruleset, clock, tmp_path,  # type: ignore[no-untyped-def]
                                                          capsys) -> None:
    _ingest_burst(engine, ruleset, clock)
    with Session(engine) as s:
        grouped_by_pipeline = s.exec(select(sa.func.count()).select_from(Case).where(
            Case.grouped_into.is_not(None))).one()
    assert grouped_by_pipeline == 2  # max_alerts 3 (docs/rules.md): three alerts of their own, then a group of two
    new = _edited(tmp_path, ("grouping: {window: 2m, max_alerts: 3}", "grouping: {window: 2m, max_alerts: 10}"))
    out = json.loads(_run(capsys, "--rules", new, "--against", str(RULES), "--db", db_url,
                          "--until", clock.now().isoformat(), "--format", "json"))
    assert (out["current"]["grouped"], out["proposed"]["grouped"]) == (grouped_by_pipeline, 0)
    [lost] = out["grouped"]["lost"]
    assert (lost["rule"], lost["channel"], lost["count"]) == ("urgent-complaint", "#cs-alerts", 2)
    assert [e["author"] for e in lost["examples"]] == ["@buyer3", "@buyer4"]


def test_backtest_period_and_bad_input_errors(history, db_url, clock, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = json.loads(_run(capsys, "--rules", str(RULES), "--against", str(RULES), "--db", db_url, "--since", "12h",
                          "--until", clock.now().isoformat(), "--format", "json"))
    assert out["mentions"] == 0  # all five are three days old
    with pytest.raises(SystemExit) as stop:
        main(["backtest", "--rules", str(RULES), "--db", db_url, "--since", "last month"])
    assert stop.value.code == "backtest: --since 'last month' is neither a duration (30d, 12h) nor a date (2026-11-01)."
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nbrand: {name: X}\nrules:\n  - {name: a, drop: true, continu: true}\n")
    with pytest.raises(SystemExit) as stop:
        main(["backtest", "--rules", str(broken), "--against", str(RULES), "--db", db_url])
    assert str(stop.value.code).splitlines() == [
        f"backtest: {broken} has errors, nothing was replayed:",
        f"{broken}:4:27: unknown key 'continu' in rules[0]; did you mean 'continue'?"]


def _db_state(engine, db_url: str) -> tuple[object, ...]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        counts = tuple(s.exec(select(sa.func.count()).select_from(t)).one() for t in (Mention, Case, Outbox))
    digest = hashlib.sha256(Path(db_url.removeprefix("sqlite:///")).read_bytes()).hexdigest() \
        if db_url.startswith("sqlite") else ""
    return counts, digest


def test_backtest_shows_what_a_new_silence_would_have_muted(history, db_url, clock, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    start = (clock.now() - timedelta(days=4)).isoformat()
    new = tmp_path / "rules-silenced.yaml"
    new.write_text(RULES.read_text(encoding="utf-8") + f'\nsilences:\n  - {{match: {{author: "@bo"}}, from: {start}, '
                   "for: 30d, comment: known troll}\n", encoding="utf-8")
    out = json.loads(_run(capsys, "--rules", str(new), "--against", str(RULES), "--db", db_url,
                          "--until", clock.now().isoformat(), "--format", "json"))
    assert (out["current"]["muted"], out["proposed"]["muted"]) == (0, 1)
    assert [(x["silence"], x["count"], [e["author"] for e in x["examples"]]) for x in out["muted"]["gained"]] == [
        ("author @bo", 1, ["@bo"])]
    assert [(x["rule"], x["channel"], x["count"]) for x in out["alerts"]["lost"]] == [
        ("possible-complaint", "#cs-alerts", 1)]


def test_backtest_of_a_missing_database_creates_nothing_and_says_what_to_do(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nope.db"
    with pytest.raises(SystemExit) as stop:
        main(["backtest", "--rules", str(RULES), "--against", str(RULES), "--db", f"sqlite:///{missing}"])
    assert stop.value.code == (f"backtest: cannot read the mentions in sqlite:///{missing} (unable to open "
                               "database file). Pass --db, or set DATABASE_URL.")
    assert not missing.exists()


def test_backtest_counts_the_channels_budget_across_rules(engine, db_url, ruleset, clock, tmp_path,  # type: ignore[no-untyped-def]
                                                          capsys) -> None:
    _ingest_burst(engine, ruleset, clock)
    # the key's budget lifted, the channel's set to 2 a minute: the third post on is grouped
    new = _edited(tmp_path, ("grouping: {window: 2m, max_alerts: 3}",
                             "grouping: {window: 2m, max_alerts: 10, channel_max_alerts: 2}"))
    out = json.loads(_run(capsys, "--rules", new, "--against", str(RULES), "--db", db_url,
                          "--until", clock.now().isoformat(), "--format", "json"))
    assert (out["current"]["grouped"], out["proposed"]["grouped"]) == (2, 3)
    [gained] = out["grouped"]["gained"]
    assert (gained["rule"], gained["channel"], gained["count"]) == ("urgent-complaint", "#cs-alerts", 1)
    assert [e["author"] for e in gained["examples"]] == ["@buyer2"]
