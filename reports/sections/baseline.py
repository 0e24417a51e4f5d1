"""The baseline section (--baseline, `nccldoctor compare`): what was judged, and every size.

Two tables: the judged values (each probe's busbw and latency, each node's compute score, each
link, DDP tokens/s) with their noise and status, then each probe's busbw and time at every size
measured in both runs. Runs that were not compared get one table saying why.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.units import format_size

METRIC_NAMES = {
    "busbw": "peak busbw",
    "latency": "latency",
    "score": "compute score",
    "link": "link",
    "tokens_per_s": "tokens/s",
}


def judged_table(section: dict[str, Any]) -> pd.DataFrame | None:
    """One line per judged value: baseline, this run, change, how many times slower, noise, status."""
    lines = [
        [
            d["subject"],
            _what(d),
            _value(d["old"], d["unit"]),
            _value(d["new"], d["unit"]),
            f"{d['change']:+.0%}",
            _times(d["slowdown"]),
            f"{1 + d['noise']:.2f}x",
            d["status"],
        ]
        for d in section["deltas"]
        if d["judged"]
    ]
    columns = ["what", "measure", "baseline", "this run", "change", "slower", "noise", "status"]
    return pd.DataFrame(lines, columns=columns) if lines else None


def sizes_table(section: dict[str, Any]) -> pd.DataFrame | None:
    """One line per probe, size and mode: busbw and time in both runs (details, not judged)."""
    details = [d for d in section["deltas"] if not d["judged"]]
    busbw = {_key(d): d for d in details if d["metric"] == "busbw"}
    time = {_key(d): d for d in details if d["metric"] == "time"}
    lines = []
    for key, bw in busbw.items():
        t = time[key]
        lines.append(
            [
                bw["probe"],
                format_size(bw["size_bytes"]),
                "in-place" if bw["inplace"] else "out-of-place",
                f"{bw['old']:.3f}",
                f"{bw['new']:.3f}",
                f"{bw['change']:+.0%}",
                f"{t['old']:.1f}",
                f"{t['new']:.1f}",
                f"{t['change']:+.0%}",
                f"{1 + bw['noise']:.2f}x",
                bw["status"],
            ]
        )
    columns = ["probe", "size", "mode", "busbw before", "busbw now", "change", "time before (us)"]
    columns += ["time now (us)", "change", "noise", "status"]
    return pd.DataFrame(lines, columns=columns) if lines else None


def reasons_table(section: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([[reason] for reason in section["reasons"]], columns=["why not compared"])


def baseline_tables(section: dict[str, Any]) -> list[Table]:
    """The section's tables, titled (also what `nccldoctor compare` prints)."""
    title = f"Baseline {section['path']}"
    if not section["comparable"]:
        return [(f"{title}: not compared", reasons_table(section))]
    bar = section["thresholds"]
    judged = (
        f"{title}: regression beyond the noise (x --regression-noise {bar['noise_factor']:g}), "
        f"fail beyond {bar['fail_pct']:g}% worse"
    )
    return [(judged, judged_table(section)), (f"{title}: every size", sizes_table(section))]


@view("baseline", order=80)
def draw(report: Report) -> list[Table]:
    return baseline_tables(report.sections["baseline"])


def _key(delta: dict[str, Any]) -> tuple[str, int, bool]:
    return (delta["probe"], delta["size_bytes"], delta["inplace"])


def _what(delta: dict[str, Any]) -> str:
    name = METRIC_NAMES.get(delta["metric"], delta["metric"])
    if delta["metric"] in ("busbw", "latency"):
        sizes = delta["sizes"]
        span = (
            format_size(sizes[0]) if len(sizes) == 1 else f"{format_size(sizes[0])}-{format_size(sizes[-1])}"
        )
        return f"{name} at {format_size(delta['size_bytes'])} (judged on {span})"
    return name


def _value(value: float, unit: str) -> str:
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text} {unit}" if unit else text


def _times(slowdown: float | None) -> str:
    if slowdown is None:
        return "nothing measured"
    return f"{slowdown:.2f}x" if slowdown >= 1 else f"{1 / slowdown:.2f}x faster"
