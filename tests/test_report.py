"""KPIs of a hand-computed week (tests/fixtures/report/README.md shows the arithmetic), their renderings and charts."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlmodel import Session, select

from monitor.model import Case, Mention, Outbox
from monitor.report import charts
from monitor.report.kpis import WEEKDAYS, Report, build_report, percentile, top_keywords
from monitor.report.render import render_tables, summary_text, to_csv, to_dict, to_json
from monitor.store import transaction

FIXTURES = Path(__file__).parent / "fixtures" / "report"
WEEK = json.loads((FIXTURES / "week.json").read_text(encoding="utf-8"))
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
BRAND_TERMS = ("Nordlys Shop", "nordlysshop", "nordlys")


def _t(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def load_week(engine: Any, week: dict[str, Any] = WEEK) -> None:
    """Insert the fixture's rows through the ORM, linking mentions and outbox rows to their cases."""
    times = ("opened_at", "sla_due_at", "first_response_at", "breached_at", "resolved_at", "acknowledged_at",
             "customer_dm_at")
    with transaction(engine) as s:
        case_ids: dict[str, int] = {}
        for row in week["cases"]:
            fields = {k: v for k, v in row.items() if k != "ref" and k not in times}
            case = Case(conversation_id=row["ref"], **fields, **{k: _t(row.get(k)) for k in times})
            s.add(case)
            s.flush()
            case_ids[row["ref"]] = case.id
        for row in week["mentions"]:
            s.add(Mention(platform=row["platform"], kind=row["kind"], external_id=row["ref"], lang=row["lang"],
                          created_at=_t(row["created_at"]), author_id=row["author_id"],
                          author_handle=row["author_handle"], text=row["text"], categories=row["categories"],
                          from_brand=row.get("from_brand", False),
                          case_id=case_ids[row["case"]] if row["case"] else None))
        for row in week["outbox"]:
            s.add(Outbox(kind=row["kind"], dedup_key=row["ref"], state=row["state"], sent_at=_t(row["sent_at"]),
                         case_id=case_ids[row["case"]], payload=row["payload"], platform="x"))


def week_report(engine: Any) -> Report:
    load_week(engine)
    with Session(engine) as s:
        return build_report(s, since=_t(WEEK["since"]), until=_t(WEEK["until"]), timezone=WEEK["timezone"],
                            brand_terms=BRAND_TERMS)


def test_every_figure_matches_the_hand_computed_week(engine: Any) -> None:
    report = week_report(engine)
    got = to_dict(report)
    counts = got.pop("heatmap")["counts"]
    nonzero = [[day, hour, n] for day, row in zip(WEEKDAYS, counts, strict=True) for hour, n in enumerate(row) if n]
    expected = dict(EXPECTED)
    assert nonzero == expected.pop("heatmap_nonzero")
    assert got == expected
    # the same figures straight from the dataclass
    assert report.first_response_median_s == 900.0
    assert report.first_response_p90_s == 2880.0
    assert report.sla_overall.percent == 60.0
    assert report.moved_to_dm_percent == 33.3
    assert report.busiest_hour == ("Mon", 9, 2)


def test_an_empty_period_reports_zeros_not_errors(engine: Any) -> None:
    with Session(engine) as s:
        report = build_report(s, since=_t(WEEK["since"]), until=_t(WEEK["until"]), timezone="UTC")
    assert report.mentions == 0 and report.cases_opened == 0
    assert report.first_response_median_s is None
    assert report.sla_overall.percent is None
    assert report.busiest_hour is None
    assert len(report.sla_by_day) == 8  # 23:00 UTC Sunday to 23:00 UTC Sunday touches eight UTC days
    text = summary_text(report, title="Week 47")
    assert "0 mentions, 0 cases, 0 resolved" in text
    for name, _title, png in charts.chart_pngs(report):
        assert charts.png_size(png) == charts.CHART_SIZE, name


def test_percentile_and_keywords() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90) == pytest.approx(91.0)
    words = top_keywords([("My PARCEL, my parcel! https://x.co/abc @nordlysshop", "en"),
                          ("Pakken er ikke kommet #nordlys", "da")], brand_terms=("Nordlys Shop",))
    assert words == (("kommet", 1), ("pakken", 1), ("parcel", 1))


def test_json_csv_and_tables_show_the_figures(engine: Any) -> None:
    report = week_report(engine)
    assert json.loads(to_json(report))["sla"]["overall"]["percent"] == 60.0
    rows = list(csv.reader(io.StringIO(to_csv(report))))
    assert rows[0] == ["section", "name", "value"]
    assert ["platform", "x", "4"] in rows
    assert ["sla_rule", "urgent", "66.7"] in rows
    assert ["cases", "first_response_median_s", "900"] in rows
    assert ["heatmap", "Tue 13", "2"] in rows
    console = Console(file=io.StringIO(), width=120, color_system=None)
    render_tables(report, console=console)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "First response, median" in out and "15 min" in out
    assert "60% (3 of 5)" in out
    assert "business-hours-complaint" in out and "(unassigned)" in out
    text = summary_text(report, title="Week 47")
    assert "• 7 mentions, 6 cases, 3 resolved" in text
    assert "• First response: median 15 min, 90% within 48 min" in text
    assert "• Within target: 60% (3 of 5), 3 breaches" in text
    assert "• Top complaints: delivery (3), billing (1), damaged (1)" in text
    assert "• Busiest hour: Mon 09:00 (2 mentions)" in text


def test_charts_are_pngs_of_the_expected_size(engine: Any, tmp_path: Path) -> None:
    report = week_report(engine)
    pngs = charts.chart_pngs(report)
    assert [name for name, _, _ in pngs] == ["volume-heatmap.png", "first-response.png", "sla-trend.png"]
    for name, _title, png in pngs:
        assert len(png) > 10_000, name  # a real picture, not a blank canvas
        assert charts.png_size(png) == (1000, 500), name
        (tmp_path / name).write_bytes(png)
    board = charts.dashboard_png(report)
    assert charts.png_size(board) == (1000, 1500)
    # different data, different picture: the charts really draw the report
    later = build_report_after(engine, days=1)
    assert charts.chart_pngs(later)[0][2] != pngs[0][2]


def build_report_after(engine: Any, *, days: int) -> Report:
    with Session(engine) as s:
        return build_report(s, since=_t(WEEK["since"]) + timedelta(days=days), until=_t(WEEK["until"]),
                            timezone=WEEK["timezone"])


# --------------------------------------------------------------------------- the CLI: backfill, then report


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_backfill_fetches_back_to_since_once_then_report_shows_it(
    db_url: str, simple_rules_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from connectors.sandbox.server import Sandbox
    from monitor.cli import main
    from monitor.store import make_engine

    with Sandbox(port=0) as box:
        person = {"id": "2001", "username": "anna"}
        # ids rise with time, as X's do: oldest first
        box.add_tweets([
            {"tweet": {"text": "@nordlysshop five days ago", "created_at": _ago(days=5)}, "author": person},
            {"tweet": {"text": "@nordlysshop my parcel is broken", "created_at": _ago(days=2)}, "author": person},
            {"tweet": {"text": "@nordlysshop still waiting for a refund", "created_at": _ago(days=1)},
             "author": {"id": "2002", "username": "bo"}},
        ])
        box.add_fb_comments([
            {"message": "four days old", "from": {"id": "3001", "name": "Kari"}, "created_time": _ago(days=4)},
            {"message": "Pakken er ikke kommet", "from": {"id": "3001", "name": "Kari"}, "created_time": _ago(hours=20)},
        ])
        args = ["backfill", "--since", "3d", "--rules", str(simple_rules_file), "--db", db_url,
                "--sandbox-url", box.url]
        assert main(args) == 0
        first = capsys.readouterr().out
        assert "x-mentions: 2 fetched, 2 new, 0 already stored, 0 older than --since" in first
        assert "fb-comments: 2 fetched, 1 new, 0 already stored, 1 older than --since" in first
        engine = make_engine(db_url)
        with Session(engine) as s:
            stored = sorted(m.text for m in s.exec(select(Mention)).all())
        assert stored == ["@nordlysshop my parcel is broken", "@nordlysshop still waiting for a refund",
                          "Pakken er ikke kommet"]

        assert main(args) == 0  # a second run stores nothing
        second = capsys.readouterr().out
        assert "x-mentions: 2 fetched, 0 new, 2 already stored, 0 older than --since" in second
        assert "fb-comments: 2 fetched, 0 new, 1 already stored, 1 older than --since" in second
        with Session(engine) as s:
            assert len(s.exec(select(Mention)).all()) == 3
            # history opens cases as dry runs: nothing is posted publicly for old posts
            assert all(c.dry_run for c in s.exec(select(Case)).all())
        engine.dispose()
        assert box.x_posts() == [] and box.fb_posts() == []

    charts_dir = tmp_path / "charts"
    assert main(["report", "--since", "7d", "--format", "json", "--db", db_url, "--rules", str(simple_rules_file),
                 "--png", str(charts_dir)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mentions"]["total"] == 3
    assert shown["mentions"]["by_platform"] == {"x": 2, "facebook": 1}
    assert sorted(p.name for p in charts_dir.iterdir()) == ["first-response.png", "sla-trend.png",
                                                             "volume-heatmap.png"]
    single = tmp_path / "all.png"
    assert main(["report", "--format", "csv", "--db", db_url, "--rules", str(simple_rules_file),
                 "--png", str(single)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "section,name,value"
    assert charts.png_size(single.read_bytes()) == charts.DASHBOARD_SIZE
