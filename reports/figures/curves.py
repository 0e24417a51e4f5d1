"""Bus bandwidth and time against message size, one figure per probe: where bandwidth falls off,
where latency ends, how far apart the fastest and slowest rank were, and the bound it was judged
against."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes

from nccldoctor.report import Report
from nccldoctor.reports.figures import RESULTS, Plot, figure, plot
from nccldoctor.reports.figures.canvas import EXPECTED, SERIES, log_y, new_figure, note, size_axis
from nccldoctor.reports.figures.expected import Bound, probe_bounds
from nccldoctor.rows import rows_frame

MODES = {False: ("out-of-place", "-"), True: ("in-place", "--")}
CAPTION = (
    "Lines: the median over the iterations, out-of-place solid, in-place dashed. Band: the fastest "
    "to the slowest rank's time at each size (on the left, the busbw those times give). "
    "Green: the bound the run was judged against. GB/s = 1e9 bytes/s; busbw by nccl-tests' formulas."
)


@figure(RESULTS, order=0)
def draw_curves(report: Report) -> list[Plot]:
    frame = rows_frame(report.probe_results)
    plots = []
    for index, (probe, rows) in enumerate(frame.groupby("probe", sort=False)):
        color = SERIES[index % len(SERIES)]
        fig, (bw_ax, time_ax) = new_figure(3.2, left=1.0, top=0.75, ncols=2, gridspec_kw={"wspace": 0.3})
        _busbw(bw_ax, rows, color, probe_bounds(report, str(probe)))
        _time(time_ax, rows, color, probe_bounds(report, str(probe)))
        world = int(rows["world_size"].iloc[0])
        fig.suptitle(f"{probe}  ({world} ranks, {rows['dtype'].iloc[0]})", fontweight="bold")
        caption = CAPTION if index == 0 else ""  # said once, above the first probe's figure
        plots.append(plot(f"curve-{probe}", f"{probe}: busbw and time against size", fig, caption))
    return plots


def _by_mode(rows: pd.DataFrame):
    for inplace, mode_rows in rows.groupby("inplace", sort=True):
        yield MODES[bool(inplace)], mode_rows.sort_values("size_bytes")


def _busbw(ax: Axes, rows: pd.DataFrame, color: str, bounds: list[Bound]) -> None:
    size_axis(ax, rows["size_bytes"])
    ax.set_title("bus bandwidth")
    measured = rows[rows["busbw_gbps"] > 0]
    if measured.empty:  # one rank: nothing crosses a link, busbw is 0 by definition
        note(ax, "busbw is 0 with one rank:\nnothing crosses a link")
        return
    log_y(ax, "busbw (GB/s)")
    for (label, line), mode in _by_mode(measured):
        sizes, busbw = mode["size_bytes"], mode["busbw_gbps"]
        # The busbw the fastest and the slowest rank's times give (busbw is size / time).
        fastest = busbw * mode["time_us"] / mode["min_time_us"]
        slowest = busbw * mode["time_us"] / mode["max_time_us"]
        ax.fill_between(sizes, slowest, fastest, color=color, alpha=0.15, linewidth=0)
        ax.plot(sizes, busbw, line, color=color, marker="o", markersize=3, label=label)
    for bound in bounds:
        if bound.metric == "min_busbw_gbps":
            _bound_line(ax, bound, f"≥ {bound.value:g} GB/s")
    ax.legend(loc="upper left")


def _time(ax: Axes, rows: pd.DataFrame, color: str, bounds: list[Bound]) -> None:
    size_axis(ax, rows["size_bytes"])
    ax.set_title("time per call")
    log_y(ax, "time (µs)")
    for (label, line), mode in _by_mode(rows):
        sizes = mode["size_bytes"]
        ax.fill_between(sizes, mode["min_time_us"], mode["max_time_us"], color=color, alpha=0.15, linewidth=0)
        ax.plot(sizes, mode["time_us"], line, color=color, marker="o", markersize=3, label=label)
    for bound in bounds:
        if bound.metric == "max_latency_us":
            _bound_line(ax, bound, f"≤ {bound.value:g} µs")
    ax.legend(loc="upper left")


def _bound_line(ax: Axes, bound: Bound, text: str) -> None:
    """A probe-wide bound across the axes; a bound at one size as a mark at that size."""
    label = f"expected {text} ({bound.source})"
    if bound.size_bytes is None:
        ax.axhline(bound.value, color=EXPECTED, linestyle=":", linewidth=1.5, label=label)
    else:
        ax.plot(
            [bound.size_bytes],
            [bound.value],
            marker="_",
            markersize=18,
            markeredgewidth=2.5,
            color=EXPECTED,
            linestyle="none",
            label=label,
        )
