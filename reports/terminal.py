"""The terminal: one table per probe (nccl-tests' columns), the findings with fixes, the verdict."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nccldoctor.report import Report
from nccldoctor.reports.exclude_list import exclude_line
from nccldoctor.reports.sections import section_tables
from nccldoctor.reports.tables import (
    busbw_footer,
    digest_title,
    findings_digest,
    hostnames,
    probe_tables,
    short_header,
    where,
)

LOG_WIDTH = 160  # when stdout is a file or a pipe, do not squeeze tables into 80 columns
_VERDICT_STYLE = {"pass": "bold green", "warn": "bold yellow", "fail": "bold red", "error": "bold red"}
_SEVERITY_STYLE = {"info": "cyan", "warn": "yellow", "fail": "red"}


class TerminalSink:
    def __init__(self, quiet: bool = False, console: Console | None = None) -> None:
        self.quiet = quiet
        self.console = console or make_console()

    @classmethod
    def from_options(cls, options: object) -> TerminalSink:
        return cls(quiet=getattr(options, "quiet", False))

    def emit(self, report: Report, out_dir: Path | None) -> None:
        with contextlib.suppress(BrokenPipeError):  # the reader went away (`| head`)
            self._emit(report, out_dir)

    def _emit(self, report: Report, out_dir: Path | None) -> None:
        self.console.print(headline(report))
        if not self.quiet:
            self._sections(report)
            for probe, frame in probe_tables(report.probe_results).items():
                self._probe_table(probe, frame, busbw_footer(report.probe_results, probe))
        self._findings(report)
        line = exclude_line(report)
        if line:
            self.console.print(line, markup=False)
        self._verdict(report, out_dir)

    def _sections(self, report: Report) -> None:
        for title, frame in section_tables(report):
            self._print_frame(title, frame)

    def _print_frame(self, title: str, frame) -> None:
        table = Table(title=title, title_justify="left")
        for column in frame.columns:
            table.add_column(column, overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(*map(str, row))
        self.console.print(table)

    def _probe_table(self, probe: str, frame, footer: str) -> None:
        table = Table(
            title=f"{probe}   (out-of-place | in-place)",
            title_justify="left",
            caption=footer,
            caption_justify="left",
        )
        for column in frame.columns:
            table.add_column(short_header(column), justify="right")
        for row in frame.itertuples(index=False):
            table.add_row(*map(str, row))
        self.console.print(table)

    def _findings(self, report: Report) -> None:
        if not report.findings:
            self.console.print("No findings.")
            return
        shown, rest = findings_digest(report.findings)
        title = digest_title(len(shown), len(report.findings))
        table = Table(title=title, title_justify="left", show_lines=True)
        for column in ("severity", "code", "where", "message", "fix"):
            table.add_column(column, overflow="fold")
        names = hostnames(report)
        for f in shown:
            style = _SEVERITY_STYLE[f.severity.value]
            table.add_row(f"[{style}]{f.severity.value}[/]", f.code, where(f, names), f.message, f.fix)
        self.console.print(table)
        if rest is not None:
            self._print_frame("More findings, by code", rest)

    def _verdict(self, report: Report, out_dir: Path | None) -> None:
        style = _VERDICT_STYLE[report.verdict]
        tail = "" if report.complete else " (incomplete run: partial report)"
        self.console.print(
            f"[{style}]verdict: {report.verdict.upper()}[/] exit code {report.exit_code}{tail}"
            + speed_note(report)
        )
        if out_dir is not None:
            self.console.print(f"report: {out_dir}")


def speed_note(report: Report) -> str:
    """After the verdict: whether speed was judged, so a PASS is not read as "fast enough"."""
    speed = report.sections.get("speed")
    return f"; {speed['note']}" if speed and not speed["judged"] else ""


def headline(report: Report) -> str:
    """The first line: the job, or for a preflight report the node and the master it checked."""
    job = report.job
    if "logs" in report.sections:  # nccldoctor explain: the root cause is the first thing said
        return f"nccldoctor explain: {report.sections['logs']['root_cause']}"
    preflight = report.sections.get("preflight")
    if preflight:
        master, nproc = preflight["master"], job.get("world_size") or "-"
        return (
            f"nccldoctor preflight on {preflight['hostname']}: master {master['host']}:{master['port']}, "
            f"--nproc-per-node {nproc}, backend {job.get('backend')}"
        )
    return (
        f"nccldoctor: {job.get('world_size')} ranks on {job.get('nnodes')} node(s), "
        f"backend {job.get('backend')}, device {job.get('device')}"
    )


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's default exits the process with code 1: a reader that stops early (`| head`)
        # would change the verdict's exit code. Stop printing instead; the files are written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise BrokenPipeError


def make_console() -> Console:
    # Never narrower than LOG_WIDTH: a narrow terminal wraps long lines, but rich would cut
    # the numbers themselves to "…", and the numbers are the point.
    width = max(Console().width, LOG_WIDTH) if sys.stdout.isatty() else LOG_WIDTH
    return _Console(highlight=False, width=width)
