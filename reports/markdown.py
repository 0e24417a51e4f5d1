"""report.md: the same tables as the terminal, readable on GitHub."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.tables import average_busbw, network_table, probe_tables, where

FILENAME = "report.md"


def markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(map(cell, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(cell, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def render(report: Report) -> str:
    job = report.job
    lines = [
        f"# nccldoctor report: {report.verdict.upper()} (exit {report.exit_code})",
        "",
        f"{job.get('world_size')} ranks on {job.get('nnodes')} node(s), backend "
        f"{job.get('backend')}, device {job.get('device')}, created {report.created}.",
        "",
    ]
    if job.get("nodes"):
        nodes = pd.DataFrame(
            [
                {"node": n["node_rank"], "hostname": n["hostname"], "ranks": " ".join(map(str, n["ranks"]))}
                for n in job["nodes"]
            ]
        )
        lines += ["## Nodes", "", markdown_table(nodes), ""]
    network = network_table(report)
    if network is not None:
        lines += ["## Interfaces", "", markdown_table(network), ""]
    lines += ["## Findings", ""]
    if report.findings:
        findings = pd.DataFrame(
            [
                {
                    "severity": f.severity.value,
                    "code": f.code,
                    "where": where(f),
                    "message": f.message,
                    "fix": f.fix,
                }
                for f in report.findings
            ]
        )
        lines += [markdown_table(findings), ""]
    else:
        lines += ["None.", ""]
    for probe, table in probe_tables(report.results).items():
        lines += [
            f"## {probe}",
            "",
            markdown_table(table),
            "",
            f"Avg bus bandwidth: {average_busbw(report.results, probe):.3f} GB/s",
            "",
        ]
    return "\n".join(lines)


class MarkdownSink:
    def emit(self, report: Report, out_dir: Path) -> None:
        (out_dir / FILENAME).write_text(render(report))
