"""The sweeps: busbw through each NIC against its line rate, and each NCCL/Gloo setting's busbw
curve with its round-to-round spread, the recommended setting drawn bold."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.figures import Plot, figure, plot
from nccldoctor.reports.figures.canvas import FAIL, MUTED, OK, SERIES, log_y, new_figure, size_axis
from nccldoctor.units import format_size

RECOMMENDED = "recommended"  # probes/settings_sweep.py's verdict for a setting worth taking


@figure("nic_sweep", order=0)
def draw_nic_sweep(report: Report) -> list[Plot]:
    section = report.sections["nic_sweep"]
    results = section.get("results") or []
    if not results:
        return []
    fig, ax = new_figure(1.1 + 0.45 * len(results), left=1.5)
    labels, measured = [], []
    for i, r in enumerate(results):
        in_use = "  (in use)" if r.get("in_use") else ""
        labels.append(f"{r['iface']}{in_use}")
        line_rate = (r.get("line_rate_mbps") or 0) / 8000  # Mb/s -> GB/s
        if line_rate:
            ax.barh(i, line_rate, color="none", edgecolor=MUTED, linestyle="--", height=0.7)
        if r.get("failed"):
            ax.text(0, i, f"  failed: {r['failed']}", va="center", color=FAIL, fontsize=8)
            continue
        ax.barh(i, r["busbw_gbps"], color=OK, height=0.7)
        share = r.get("percent_of_line_rate")
        text = f" {r['busbw_gbps']:.3g} GB/s" + (f" ({share:.0f}% of line rate)" if share is not None else "")
        ax.text(r["busbw_gbps"], i, text, va="center", fontsize=8)
        measured.append(max(r["busbw_gbps"], line_rate))
    ax.set_yticks(range(len(results)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(measured, default=1) * 1.45)
    ax.set_xlabel("busbw (GB/s); dashed outline: the NIC's line rate")
    size = format_size(results[0]["size_bytes"]) if results[0].get("size_bytes") else "the largest size"
    ax.set_title(f"Per-NIC sweep: all_reduce busbw at {size} through each interface ({section['variable']})")
    ax.grid(axis="y", visible=False)
    caption = "Each interface forced in turn on every node; line rate from the NIC's reported speed."
    return [plot("nic-sweep", "Per-NIC sweep", fig, caption)]


@figure("settings_sweep", order=0)
def draw_settings_sweep(report: Report) -> list[Plot]:
    section = report.sections["settings_sweep"]
    if not section.get("table"):
        return []
    table = pd.DataFrame(section["table"])
    recommended = {v["best"] for v in (section.get("verdicts") or {}).values() if v["verdict"] == RECOMMENDED}
    order = [s["name"] for s in section.get("settings") or []]
    color = {name: SERIES[i % len(SERIES)] for i, name in enumerate(order)}
    plots = []
    for probe, rows in table.groupby("probe", sort=False):
        fig, ax = new_figure(3.2, left=1.0)
        size_axis(ax, rows["size_bytes"])
        log_y(ax, "busbw (GB/s)")
        for name in [n for n in order if n in set(rows["setting"])]:
            mine = rows[(rows["setting"] == name) & (rows["busbw_median"] > 0)].sort_values("size_bytes")
            bold = name in recommended
            label = f"{name}  ★ recommended" if bold else name
            ax.fill_between(
                mine["size_bytes"],
                mine["busbw_min"],
                mine["busbw_max"],
                color=color[name],
                alpha=0.15,
                linewidth=0,
            )
            ax.plot(
                mine["size_bytes"],
                mine["busbw_median"],
                color=color[name],
                marker="o",
                markersize=3,
                linewidth=2.6 if bold else 1.2,
                label=label,
            )
        ax.legend(loc="upper left")
        ax.set_title(f"Settings sweep, {probe}: {section.get('repeats', '?')} rounds per setting")
        caption = (
            "Line: the median over the rounds; band: the lowest to the highest round. Overlapping bands "
            f"mean the difference is noise. {section.get('advice') or ''}"
        )
        plots.append(plot(f"sweep-{probe}", f"Settings sweep: {probe}", fig, caption.strip()))
    return plots
