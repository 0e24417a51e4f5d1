"""`nccldoctor explain`'s section: the log files read, and what they say about the job."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view


@view("logs", order=0)
def draw(report: Report) -> list[Table]:
    logs = report.sections["logs"]
    files = pd.DataFrame(logs["files"], columns=["file", "lines", "bytes", "error"]).fillna("")
    span = " .. ".join(logs["time_span"]) if logs.get("time_span") else "-"
    summary = pd.DataFrame(
        [
            {"what": "time span", "value": span},
            {"what": "ranks seen", "value": _compact(logs["ranks_seen"])},
            {"what": "hosts seen", "value": ", ".join(logs["hosts_seen"]) or "-"},
            {"what": "lines matched", "value": logs["matched_lines"]},
        ]
    )
    return [("Logs read", files), ("What the logs say", summary)]


def _compact(ranks: list[int]) -> str:
    if not ranks:
        return "-"
    if ranks == list(range(ranks[0], ranks[-1] + 1)) and len(ranks) > 2:
        return f"{ranks[0]}-{ranks[-1]} ({len(ranks)})"
    return ",".join(map(str, ranks))
