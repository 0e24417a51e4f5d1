"""Against the baseline (--baseline, nccldoctor compare): how much slower or faster each judged
value is than the baseline run's, against the noise band the two runs' own spread allows."""

from __future__ import annotations

import math

from matplotlib.ticker import FuncFormatter

from nccldoctor.report import Report
from nccldoctor.reports.figures import Plot, figure, plot
from nccldoctor.reports.figures.canvas import EXPECTED, FAIL, MUTED, WARN, new_figure
from nccldoctor.units import three_digits

STATUS_COLORS = {"fail": FAIL, "warn": WARN, "worse": WARN, "better": EXPECTED}
SHOWN_MAX = 30  # judged values, the most changed first


@figure("baseline", order=0)
def draw_baseline(report: Report) -> list[Plot]:
    section = report.sections["baseline"]
    deltas = [d for d in section.get("deltas") or [] if d.get("judged") and d.get("slowdown")]
    if not deltas:
        return []
    deltas = sorted(deltas, key=lambda d: -abs(_log(d["slowdown"])))[:SHOWN_MAX]
    labels = [f"{d['metric']} {d['subject']}" for d in deltas]
    left = min(4.5, 0.4 + 0.055 * max(map(len, labels)))  # inches for the longest label at 8 pt
    fig, ax = new_figure(1.1 + 0.3 * len(deltas), left=left)
    for i, delta in enumerate(deltas):
        band = delta.get("noise") or 0.0
        ax.barh(i, 1 + band - 1 / (1 + band), left=1 / (1 + band), color=MUTED, alpha=0.25, height=0.8)
        color = STATUS_COLORS.get(delta["status"], MUTED)
        ax.plot([1, delta["slowdown"]], [i, i], color=color, linewidth=5, solid_capstyle="butt")
        label = f"  {delta['slowdown']:.2f}x {delta['status']}"
        ax.text(delta["slowdown"], i, label, va="center", fontsize=7)
    ax.set_yticks(range(len(deltas)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{three_digits(v)}x"))
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_xlabel("slowdown against the baseline (time factor: right is slower, left faster; log scale)")
    ax.grid(axis="y", visible=False)
    ax.set_title("Against the baseline: each judged value, grey its noise band")
    low, high = ax.get_xlim()
    ax.set_xlim(low / 1.5, high * 2.5)  # room for the labels
    caption = (
        "A change counts only beyond the band the two runs' own spread allows (times --regression-noise); "
        f"red: worse by more than {section.get('thresholds', {}).get('fail_pct', 20):g}% as well."
    )
    return [plot("baseline", "Against the baseline", fig, caption)]


def _log(value: float) -> float:
    return math.log(value) if value > 0 else 0.0
