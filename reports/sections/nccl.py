"""The NCCL log phase's section: what NCCL said it chose, per node."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.units import format_size


def nccl_choice(log: dict | None) -> str:
    """'AllReduce 8B-64K Ring/LL, 1M-8M Ring/Simple' from the TUNING lines (GPU runs)."""
    if not log or not log.get("tuning"):
        return "-"
    spans: dict[tuple[str, str], list[int]] = {}
    for entry in log["tuning"]:
        choice = f"{entry['algo']}/{entry['proto']}"
        spans.setdefault((entry["collective"], choice), []).append(entry["bytes"])
    return ", ".join(
        f"{coll} {format_size(min(sizes))}-{format_size(max(sizes))} {choice}"
        for (coll, choice), sizes in spans.items()
    )


def nccl_table(report: Report) -> pd.DataFrame | None:
    """Per node, what NCCL's own INFO log says it used."""
    nccl = report.sections.get("nccl")
    if not nccl or not nccl.get("nodes"):
        return None
    lines = [
        [
            node,
            log.get("version") or "?",
            ",".join(log.get("transports") or []) or "?",
            ",".join(log.get("bootstrap_ifaces") or log.get("socket_ifaces") or []) or "-",
            ",".join(log.get("ib_devices") or []) or "-",
            log.get("plugin") or "-",
        ]
        for node, log in sorted(nccl["nodes"].items(), key=lambda item: int(item[0]))
    ]
    columns = ["node", "NCCL", "network", "socket interface", "IB devices", "plugin"]
    return pd.DataFrame(lines, columns=columns)


@view("nccl", order=20)
def draw(report: Report) -> list[Table]:
    return [("NCCL, from its own INFO log", nccl_table(report))]
