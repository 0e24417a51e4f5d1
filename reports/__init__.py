"""Report sinks: one module per output format, each a peer over the same Report object.

A sink has `emit(report, out_dir)` and a `from_options(options)` class method that builds it
for a run (or returns None when the run did not ask for it); `options` is the run's output
options (`quiet`, and whatever flags a sink adds). Adding a format = its module + one entry in
SINKS. Files are written first, so they are on disk before anything is printed, and each is
written whole (nccldoctor.atomic): a reader sees the old file or the new one, never a torn one.
Every report reaches the sinks through `nccldoctor.outdir.write_report`, which masks its
secrets first (nccldoctor.redact): no sink needs to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nccldoctor.outdir import write_report
from nccldoctor.report import Report, Sink
from nccldoctor.reports.csv_report import CsvSink
from nccldoctor.reports.exclude_list import ExcludeListSink
from nccldoctor.reports.html import HtmlSink
from nccldoctor.reports.json_report import JsonSink
from nccldoctor.reports.junit import JUnitSink
from nccldoctor.reports.markdown import MarkdownSink
from nccldoctor.reports.prometheus import PrometheusSink
from nccldoctor.reports.terminal import TerminalSink

# In writing order: the files, then the terminal.
SINKS: dict[str, type[Sink]] = {
    "json": JsonSink,
    "csv": CsvSink,
    "markdown": MarkdownSink,
    "html": HtmlSink,
    "exclude": ExcludeListSink,
    "junit": JUnitSink,
    "prometheus": PrometheusSink,
    "terminal": TerminalSink,
}


def make_sinks(options: Any = None) -> list[Sink]:
    """Every sink this run wants, in writing order (None: the defaults)."""
    built = (sink.from_options(options) for sink in SINKS.values())
    return [sink for sink in built if sink is not None]


def emit_all(report: Report, out_dir: Path, sinks: list[Sink]) -> Report:
    """Every sink in order; a file that cannot be written raises OutputError (see write_report).
    Returns the report as written, its secrets masked, for a caller that prints it otherwise
    (explain --json)."""
    return write_report(report, out_dir, sinks)
