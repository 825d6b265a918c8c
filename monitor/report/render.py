"""A Report shown to people and programs: rich tables, JSON, CSV, and the digest's summary text."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from monitor.delivery.notes import humanize
from monitor.report.kpis import WEEKDAYS, Attainment, Report

if TYPE_CHECKING:  # rich is imported when tables are printed: the daemon's digest needs only text
    from rich.console import Console


def _att(a: Attainment) -> dict[str, Any]:
    return {"name": a.name, "met": a.met, "missed": a.missed, "percent": a.percent}


def _pairs(items: tuple[tuple[str, int], ...], key: str = "name", value: str = "count") -> list[dict[str, Any]]:
    return [{key: k, value: v} for k, v in items]


def to_dict(report: Report) -> dict[str, Any]:
    """Plain JSON-able data; the shape `report --format json` prints."""
    busiest = report.busiest_hour
    return {
        "period": {"since": report.since.isoformat(), "until": report.until.isoformat(),
                   "timezone": report.timezone},
        "mentions": {"total": report.mentions, "by_platform": dict(report.by_platform),
                     "by_kind": dict(report.by_kind), "by_language": dict(report.by_language)},
        "heatmap": {"weekdays": list(WEEKDAYS), "counts": [list(row) for row in report.heatmap]},
        "busiest_hour": ({"weekday": busiest[0], "hour": busiest[1], "mentions": busiest[2]}
                         if busiest else None),
        "cases": {"opened": report.cases_opened, "breaches": report.breaches, "resolved": report.resolved,
                  "moved_to_dm": report.moved_to_dm, "moved_to_dm_percent": report.moved_to_dm_percent},
        "first_response": {"answered": len(report.responses), "median_seconds": report.first_response_median_s,
                           "p90_seconds": report.first_response_p90_s},
        "auto_acknowledgement": {"cases": report.auto_acknowledged, "median_seconds": report.auto_ack_median_s},
        "handoff": {"handed_off": report.handed_off, "moved_to_dm": report.moved_to_dm,
                    "percent": report.handoff_success_percent,
                    "median_seconds_to_first_dm": report.handoff_to_dm_median_s,
                    "resolved_in_dm": report.resolved_in_dm},
        "sla": {"overall": _att(report.sla_overall), "by_rule": [_att(a) for a in report.sla_by_rule],
                "by_assignee": [_att(a) for a in report.sla_by_assignee],
                "by_day": [_att(a) for _, a in report.sla_by_day]},
        "repeat_customers": _pairs(report.repeat_customers, "author", "cases"),
        "top_categories": _pairs(report.top_categories),
        "top_keywords": _pairs(report.top_keywords),
        "acknowledgements": {"automatic": report.acks_auto, "approved": report.acks_approved},
    }


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), ensure_ascii=False, indent=2)


def to_csv(report: Report) -> str:
    """Long format, one figure a row: section, name, value (spreadsheets pivot it as they like)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "name", "value"])
    writer.writerow(["period", "since", report.since.isoformat()])
    writer.writerow(["period", "until", report.until.isoformat()])
    writer.writerow(["period", "timezone", report.timezone])
    writer.writerow(["mentions", "total", report.mentions])
    for section, items in (("platform", report.by_platform), ("kind", report.by_kind),
                           ("language", report.by_language), ("category", report.top_categories),
                           ("keyword", report.top_keywords), ("repeat_customer", report.repeat_customers)):
        for name, count in items:
            writer.writerow([section, name, count])
    for day, row in zip(WEEKDAYS, report.heatmap, strict=True):
        for hour, count in enumerate(row):
            writer.writerow(["heatmap", f"{day} {hour:02d}", count])
    for name, value in (("opened", report.cases_opened), ("breaches", report.breaches),
                        ("resolved", report.resolved), ("moved_to_dm", report.moved_to_dm),
                        ("first_response_median_s", _num(report.first_response_median_s)),
                        ("first_response_p90_s", _num(report.first_response_p90_s)),
                        ("auto_acknowledged", report.auto_acknowledged),
                        ("handed_off", report.handed_off),
                        ("handoff_to_dm_median_s", _num(report.handoff_to_dm_median_s)),
                        ("resolved_in_dm", report.resolved_in_dm),
                        ("acks_automatic", report.acks_auto), ("acks_approved", report.acks_approved)):
        writer.writerow(["cases", name, value])
    for section, atts in (("sla", (report.sla_overall,)), ("sla_rule", report.sla_by_rule),
                          ("sla_assignee", report.sla_by_assignee),
                          ("sla_day", tuple(a for _, a in report.sla_by_day))):
        for a in atts:
            writer.writerow([section, a.name, _num(a.percent)])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    from datetime import timedelta

    return humanize(timedelta(seconds=seconds))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:g}%"


def render_tables(report: Report, *, console: Console) -> None:
    """The report as rich tables in the terminal."""
    from rich.table import Table

    console.print(f"[bold]Mentions and cases[/bold] {report.since:%Y-%m-%d %H:%M} - {report.until:%Y-%m-%d %H:%M} "
                  f"UTC (local time: {report.timezone})")
    summary = Table(show_header=False, box=None)
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    busiest = report.busiest_hour
    for name, value in (
        ("Mentions", str(report.mentions)),
        ("Cases opened", str(report.cases_opened)),
        ("First response, median", _dur(report.first_response_median_s)),
        ("First response, 90th percentile", _dur(report.first_response_p90_s)),
        ("Acknowledged automatically (not a response)",
         f"{report.auto_acknowledged} (median {_dur(report.auto_ack_median_s)})"),
        ("Within target (SLA)", f"{_pct(report.sla_overall.percent)} "
                                f"({report.sla_overall.met} of {report.sla_overall.counted})"),
        ("Breaches", str(report.breaches)),
        ("Resolved", str(report.resolved)),
        ("Moved to DM", handoff_line(report)),
        ("Hand-off to first DM, median", _dur(report.handoff_to_dm_median_s)),
        ("Resolved in DM", str(report.resolved_in_dm)),
        ("Acknowledgements automatic / approved", f"{report.acks_auto} / {report.acks_approved}"),
        ("Busiest hour", f"{busiest[0]} {busiest[1]:02d}:00 ({busiest[2]})" if busiest else "-"),
    ):
        summary.add_row(name, value)
    console.print(summary)
    for title, items in (("By platform", report.by_platform), ("By kind", report.by_kind),
                         ("By language", report.by_language), ("Top complaint categories", report.top_categories),
                         ("Top complaint words", report.top_keywords),
                         ("Repeat customers", report.repeat_customers)):
        table = Table(title=title, title_justify="left")
        table.add_column("name")
        table.add_column("count", justify="right")
        for name, count in items:
            table.add_row(name, str(count))
        if items:
            console.print(table)
    for title, atts in (("SLA by rule", report.sla_by_rule), ("SLA by assignee", report.sla_by_assignee)):
        table = Table(title=title, title_justify="left")
        for col in ("name", "met", "missed", "within target"):
            table.add_column(col, justify="left" if col == "name" else "right")
        for a in atts:
            table.add_row(a.name, str(a.met), str(a.missed), _pct(a.percent))
        if atts:
            console.print(table)


def handoff_line(report: Report) -> str:
    """Like "1 of 2 hand-offs (50%)": only customers who really wrote in private count."""
    return f"{report.moved_to_dm} of {report.handed_off} hand-offs ({_pct(report.handoff_success_percent)})"


def summary_text(report: Report, *, title: str) -> str:
    """The digest's few lines of Slack text (mrkdwn)."""
    busiest = report.busiest_hour
    lines = [
        f"*{title}*",
        f"• {report.mentions} mentions, {report.cases_opened} cases, {report.resolved} resolved",
        f"• First response: median {_dur(report.first_response_median_s)}, "
        f"90% within {_dur(report.first_response_p90_s)}",
        f"• Within target: {_pct(report.sla_overall.percent)} ({report.sla_overall.met} of "
        f"{report.sla_overall.counted}), {report.breaches} breaches",
        f"• Moved to DM: {handoff_line(report)}, first DM after a median {_dur(report.handoff_to_dm_median_s)}, "
        f"{report.resolved_in_dm} resolved in DM",
        f"• Acknowledgements: {report.acks_auto} automatic, {report.acks_approved} approved",
    ]
    if report.top_categories:
        lines.append("• Top complaints: " + ", ".join(f"{k.replace('_', ' ')} ({n})" for k, n in report.top_categories[:3]))
    if busiest:
        lines.append(f"• Busiest hour: {busiest[0]} {busiest[1]:02d}:00 ({busiest[2]} mentions)")
    return "\n".join(lines)
