"""Report sinks: one module per output format, each a peer over the same Report object.

A sink is an object with `emit(report, out_dir)`. The bench builds the list with
`make_sinks`; adding a format means adding a module and one entry in SINKS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from nccldoctor.report import Report
from nccldoctor.reports.csv_report import CsvSink
from nccldoctor.reports.json_report import JsonSink
from nccldoctor.reports.markdown import MarkdownSink
from nccldoctor.reports.terminal import TerminalSink


class Sink(Protocol):
    def emit(self, report: Report, out_dir: Path) -> None: ...


SINKS: dict[str, Callable[..., Sink]] = {
    "json": JsonSink,
    "csv": CsvSink,
    "markdown": MarkdownSink,
    "terminal": TerminalSink,
}


def make_sinks(quiet: bool = False) -> list[Sink]:
    """Files first, so they are on disk before anything is printed."""
    return [SINKS["json"](), SINKS["csv"](), SINKS["markdown"](), SINKS["terminal"](quiet=quiet)]


def emit_all(report: Report, out_dir: Path, sinks: list[Sink]) -> None:
    for sink in sinks:
        sink.emit(report, out_dir)
