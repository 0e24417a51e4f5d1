"""The consistency section: only what differs between nodes, and one line for what agrees."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view


def _shown(value: object) -> str:
    return "-" if value is None else str(value)


def differs_table(report: Report) -> pd.DataFrame | None:
    section = report.sections.get("consistency") or {}
    if not section.get("differs"):
        return None
    hostnames = {str(n["node"]): n["hostname"] for n in section.get("nodes", [])}
    rows = [
        [
            d["check"],
            "no majority" if d["majority"] is None else _shown(d["majority"]),
            "; ".join(f"node {n} ({hostnames.get(n, '?')}): {_shown(v)}" for n, v in d["odd"].items()),
        ]
        for d in section["differs"]
    ]
    return pd.DataFrame(rows, columns=["check", "most nodes", "differs on"])


def agree_line(section: dict) -> str:
    nodes = len(section.get("nodes", []))
    shown = [
        f"{a['check']} {_shown(a['value'])}"
        for a in section.get("agree", [])
        if not a["check"].startswith("$")
    ]
    variables = sum(a["check"].startswith("$") for a in section.get("agree", []))
    if variables:
        shown.append(f"{variables} compared variable(s)")
    return f"all {nodes} node(s) agree on: {', '.join(shown)}" if shown else ""


def clock_line(section: dict) -> str:
    clocks = [(n["node"], n["clock"]) for n in section.get("nodes", []) if n.get("clock") and n["node"] != 0]
    if not clocks:
        return ""
    node, worst = max(clocks, key=lambda item: abs(item[1]["offset_s"]))
    return (
        f"; clocks: the largest offset from rank 0's is node {node}'s, {worst['offset_s'] * 1e3:+.1f} ms "
        f"± {worst['uncertainty_s'] * 1e3:.1f} ms"
    )


@view("consistency", order=15)
def draw(report: Report) -> list[Table]:
    section = report.sections["consistency"]
    tables: list[Table] = [("Consistency across nodes: what differs", differs_table(report))]
    line = agree_line(section) + clock_line(section)
    if line:
        nodes = len(section.get("nodes", []))
        agreed = pd.DataFrame([[line.split(": ", 1)[1]]], columns=[f"all {nodes} node(s) agree on"])
        tables.append(("Consistency across nodes", agreed))
    return tables
