"""The per-NIC sweep's section: each candidate interface's (or IB port's) bandwidth and latency."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.reports.tables import above_100
from nccldoctor.units import format_size

IB_VARIABLE = "NCCL_IB_HCA"  # nccldoctor.net.nic_sweep's; not imported: views read only JSON


def nic_sweep_table(report: Report) -> pd.DataFrame | None:
    """Per candidate interface: bandwidth, % of line rate and latency, measured in fresh processes."""
    sweep = report.sections.get("nic_sweep")
    if not sweep:
        return None

    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        [
            r["iface"] + (" (in use)" if r["in_use"] else ""),
            format_size(r["size_bytes"]) if r["size_bytes"] else "-",
            number(r["busbw_gbps"], ".3f"),
            _line_rate_share(r["percent_of_line_rate"]),
            f"{r['line_rate_mbps']} Mb/s" if r["line_rate_mbps"] else "unknown",
            number(r["latency_us"], ".1f"),
            r["failed"] or "ok",
        ]
        for r in sweep["results"]
    ]
    swept = "IB port" if sweep.get("variable") == IB_VARIABLE else "interface"
    columns = [swept, "size", "busbw (GB/s)", "% of line rate", "line rate", "8 B latency (us)"]
    return pd.DataFrame(lines, columns=[*columns, "status"])


def nic_sweep_title(sweep: dict) -> str:
    """Reports written before `variable` existed swept the socket variable: the old title."""
    swept = f"{IB_VARIABLE} per port, " if sweep.get("variable") == IB_VARIABLE else ""
    title = f"Per-NIC sweep ({sweep.get('backend', '')}, {swept}all_reduce in fresh processes)"
    return f"{title}. Note: {sweep['note']}" if sweep.get("note") else title


def _line_rate_share(value: float | None) -> str:
    if value is None:
        return "-"
    # Above 100%: the timing's noise, or a link faster than the speed the kernel reports.
    return f"{value:.0f}{above_100(value, 'noise, or a line rate reported below the link')}"


@view("nic_sweep", order=30)
def draw(report: Report) -> list[Table]:
    return [(nic_sweep_title(report.sections["nic_sweep"]), nic_sweep_table(report))]
