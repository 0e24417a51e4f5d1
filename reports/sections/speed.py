"""The speed section: per probe, the peak busbw and the latency, and what they are compared with."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.speed import gbps
from nccldoctor.units import format_size


def speed_table(report: Report) -> pd.DataFrame | None:
    speed = report.sections.get("speed")
    if not speed:
        return None
    line = speed.get("line_rate")
    lines = []
    for p in speed["probes"]:
        row = [
            p["probe"],
            gbps(p["peak_busbw_gbps"]) + (" (1 rank: 0 by definition)" if p["world_size"] == 1 else ""),
            format_size(p["peak_at_bytes"]),
            f"{p['latency_us']:.1f}",
            format_size(p["latency_at_bytes"]),
        ]
        if line is not None:
            row.append(f"{p['share_of_line_rate']:.1%}")
        lines.append(row)
    columns = ["probe", "peak busbw", "at size", "latency (us)", "at size"]
    if line is not None:
        columns.append(f"of {line['gbit_s']:g} Gb/s ({line['via']})")
    return pd.DataFrame(lines, columns=columns)


@view("speed", order=5)
def draw(report: Report) -> list[Table]:
    speed = report.sections["speed"]
    title = f"Speed: {speed['note']}"
    if speed.get("normal"):
        title += f"; {speed['normal']}"
    return [(title, speed_table(report))]
