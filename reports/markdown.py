"""report.md: the same tables as the terminal, readable on GitHub."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nccldoctor.atomic import write_atomically
from nccldoctor.report import Report
from nccldoctor.reports.exclude_list import exclude_line
from nccldoctor.reports.sections import capped, section_tables
from nccldoctor.reports.tables import (
    busbw_footer,
    digest_title,
    findings_digest,
    hostnames,
    probe_tables,
    where,
)
from nccldoctor.reports.terminal import headline

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
        f"{headline(report)}, created {report.created}.",
        "",
    ]
    if (
        job.get("nodes") and not {"preflight", "logs"} & report.sections.keys()
    ):  # preflight: one node, no ranks yet
        nodes = pd.DataFrame(
            [
                {"node": n["node_rank"], "hostname": n["hostname"], "ranks": " ".join(map(str, n["ranks"]))}
                for n in job["nodes"]
            ]
        )
        title, nodes = capped("Nodes", nodes)
        lines += [f"## {title}", "", markdown_table(nodes), ""]
    for title, frame in section_tables(report):
        lines += [f"## {title}", "", markdown_table(frame), ""]
    shown, rest = findings_digest(report.findings)
    lines += [f"## {digest_title(len(shown), len(report.findings))}", ""]
    if report.findings:
        names = hostnames(report)
        findings = pd.DataFrame(
            [
                {
                    "severity": f.severity.value,
                    "code": f.code,
                    "where": where(f, names),
                    "message": f.message,
                    "fix": f.fix,
                }
                for f in shown
            ]
        )
        lines += [markdown_table(findings), ""]
        if rest is not None:
            lines += ["### More findings, by code", "", markdown_table(rest), ""]
    else:
        lines += ["None.", ""]
    line = exclude_line(report, quote="`")
    if line:
        lines += [line, ""]
    for probe, table in probe_tables(report.probe_results).items():
        lines += [
            f"## {probe}",
            "",
            markdown_table(table),
            "",
            busbw_footer(report.probe_results, probe),
            "",
        ]
    return "\n".join(lines)


class MarkdownSink:
    @classmethod
    def from_options(cls, options: object) -> MarkdownSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        write_atomically(out_dir / FILENAME, render(report))
