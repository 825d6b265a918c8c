"""The report's charts as PNG bytes: busiest hours, first response against the SLA, SLA attainment trend.

matplotlib's object API on the Agg canvas only (no pyplot): it needs no display and
is safe to call from the daemon's worker threads.  Sizes are fixed so Slack shows
them alike every week: CHART_SIZE pixels each, DASHBOARD_SIZE for all three in one.
"""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot: no display on a server

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from monitor.report.kpis import WEEKDAYS, Report  # noqa: E402

DPI = 100
CHART_SIZE = (1000, 500)  # width, height in pixels
DASHBOARD_SIZE = (1000, 1500)
MET_COLOUR = "#2e7d32"
LATE_COLOUR = "#c62828"
LINE_COLOUR = "#1565c0"


def _figure(size: tuple[int, int]) -> Figure:
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # no bbox_inches="tight": it would change the pixel size from chart to chart
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555", fontsize=12)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_heatmap(ax: Axes, report: Report) -> None:
    counts = [list(row) for row in report.heatmap]
    peak = max((c for row in counts for c in row), default=0)
    image = ax.imshow(counts, aspect="auto", cmap="YlOrRd", vmin=0, vmax=max(peak, 1), interpolation="nearest")
    ax.set_yticks(range(7), labels=list(WEEKDAYS))
    ax.set_xticks(range(0, 24, 2), labels=[f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel(f"hour of day ({report.timezone})")
    ax.set_title(f"Mentions by hour and weekday ({report.mentions} in all)")
    if 0 < peak < 1000:  # numbers in the cells while they still fit
        for day, row in enumerate(counts):
            for hour, count in enumerate(row):
                if count:
                    ax.text(hour, day, str(count), ha="center", va="center", fontsize=7,
                            color="white" if count > peak * 0.6 else "black")
    bar = ax.figure.colorbar(image, ax=ax, label="mentions", fraction=0.03, pad=0.02)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()


def draw_response_times(ax: Axes, report: Report) -> None:
    ax.set_title(f"First response time against the target (SLA), {len(report.responses)} answered cases")
    if not report.responses:
        _empty(ax, "No case was answered in this period")
        return
    within = [r.seconds / 60 for r in report.responses if r.sla_seconds <= 0 or r.seconds <= r.sla_seconds]
    late = [r.seconds / 60 for r in report.responses if r.sla_seconds > 0 and r.seconds > r.sla_seconds]
    targets = sorted({r.sla_seconds / 60 for r in report.responses if r.sla_seconds > 0})
    top = max([r.seconds / 60 for r in report.responses] + targets)
    width = _nice_step(top / 20)
    edges = [i * width for i in range(int(math.ceil(top / width)) + 2)]
    heights, _, _ = ax.hist([within, late], bins=edges, stacked=True, color=[MET_COLOUR, LATE_COLOUR],
            label=[f"within target ({len(within)})", f"over target ({len(late)})"])
    for minutes, style in zip(targets, ("--", ":", "-.") * len(targets), strict=False):
        ax.axvline(minutes, color="black", linestyle=style, linewidth=1, label=f"target {minutes:g} min")
    if report.first_response_median_s is not None:
        ax.axvline(report.first_response_median_s / 60, color=LINE_COLOUR, linewidth=1.5,
                   label=f"median {report.first_response_median_s / 60:.0f} min")
    ax.set_xlabel("minutes from the first mention to our first response")
    ax.set_ylabel("cases")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, edges[-1] + width)
    ax.set_ylim(0, float(max(heights[-1])) * 1.45 + 0.5)  # headroom for the legend
    ax.legend(loc="upper right", fontsize=8, ncols=2)


def _nice_step(raw: float) -> float:
    """A bin width of 1, 2 or 5 times a power of ten, at least 1 minute."""
    if raw <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def draw_sla_trend(ax: Axes, report: Report) -> None:
    ax.set_title(f"Within target, per day (overall {report.sla_overall.percent if report.sla_overall.percent is not None else '-'}%)")
    days = report.sla_by_day
    if not any(a.counted for _, a in days):
        _empty(ax, "No case reached its target time in this period")
        return
    xs = list(range(len(days)))
    values = [a.percent if a.percent is not None else float("nan") for _, a in days]
    ax.plot(xs, values, marker="o", color=LINE_COLOUR)
    for x, (_, a) in zip(xs, days, strict=True):
        if a.counted:
            ax.annotate(f"{a.met}/{a.counted}", (x, a.percent or 0), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=8)
    step = max(1, len(days) // 14)
    ax.set_xticks(xs[::step], labels=[d.strftime("%a %d %b") for d, _ in days][::step], rotation=30,
                  ha="right", fontsize=8)
    ax.set_ylim(-5, 112)
    ax.set_ylabel("% of cases answered in time")
    ax.grid(axis="y", alpha=0.3)


CHARTS = (
    ("volume-heatmap.png", "Mentions by hour and weekday", draw_heatmap),
    ("first-response.png", "First response time against the SLA", draw_response_times),
    ("sla-trend.png", "SLA attainment per day", draw_sla_trend),
)


def chart_pngs(report: Report) -> list[tuple[str, str, bytes]]:
    """(file name, title, PNG bytes) of every chart, CHART_SIZE pixels each."""
    out = []
    for name, title, draw in CHARTS:
        fig = _figure(CHART_SIZE)
        ax = fig.add_subplot()
        draw(ax, report)
        fig.tight_layout()
        out.append((name, title, _png(fig)))
    return out


def dashboard_png(report: Report) -> bytes:
    """All charts stacked in one image (`report --png FILE.png`)."""
    fig = _figure(DASHBOARD_SIZE)
    for index, (_, _, draw) in enumerate(CHARTS, start=1):
        draw(fig.add_subplot(len(CHARTS), 1, index), report)
    fig.tight_layout()
    return _png(fig)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
