"""`nccldoctor compare OLD NEW`: a saved run against a known-good one, offline.

The same comparison as the bench's --baseline (nccldoctor.gate.baseline), on two saved reports:
a delta table on the terminal (or Markdown, or JSON), exit 1 when a regression is a failure,
0 otherwise (also when the runs are not comparable: that is said, as a warning), 2 when OLD or
NEW is not a readable report. It never imports torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nccldoctor.argtypes import factor, percent

if TYPE_CHECKING:
    from nccldoctor.report import Report

HELP = "compare a run's report with a baseline run's: deltas, regressions, exit 1 on a failure"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD", help="the baseline: a report folder or its report.json")
    parser.add_argument("new", metavar="NEW", help="the run to judge: a report folder or its report.json")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--markdown", action="store_true", help="print Markdown instead of terminal tables")
    form.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="also write the comparison as a self-contained HTML page to FILE",
    )
    parser.add_argument(
        "--regression-fail",
        type=percent,
        default=20.0,
        metavar="PERCENT",
        help="a regression beyond the noise is a warning; beyond PERCENT worse a failure (default 20)",
    )
    parser.add_argument(
        "--regression-noise",
        type=factor,
        default=1.0,
        metavar="FACTOR",
        help="how many times the runs' own spread a change must exceed to count (default 1)",
    )


def run(args: argparse.Namespace) -> int:
    from nccldoctor.errors import SHAPE_ERRORS, UsageError
    from nccldoctor.gate import load_report

    old, new = load_report(Path(args.old), "compare: OLD"), load_report(Path(args.new), "compare: NEW")
    try:
        text, code = _compared(args, old, new)
    except SHAPE_ERRORS as exc:  # all of it is drawn in memory first: this is the only line shown
        raise UsageError(
            f"compare: {args.old} and {args.new} are not reports this version can compare: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.write(text)
    return code


def _compared(args: argparse.Namespace, old: Report, new: Report) -> tuple[str, int]:
    """What compare prints, and its exit code."""
    from nccldoctor.gate.bar import Bar
    from nccldoctor.gate.baseline import compare, findings
    from nccldoctor.redact import redact_report
    from nccldoctor.report import Report

    bar = Bar(fail_pct=args.regression_fail, noise_factor=args.regression_noise)
    comparison = compare(old, new, bar)
    section = comparison.section(str(args.old))
    # The comparison as a report of its own (the run's job and time, the baseline section and
    # its findings): the terminal and Markdown sinks draw it, and its verdict is the exit code.
    report = Report(
        job=new.job,
        environment={},
        results=[],
        findings=findings(comparison, str(args.old)),
        sections={"baseline": section},
        created=new.created,
    )
    report = redact_report(report)  # as every sink's report (reports.emit_all): no credentials
    section = report.sections["baseline"]
    if args.html is not None:
        _write_html(report, args)
    if args.json:
        return json.dumps(as_json(args, section, report), indent=2) + "\n", report.exit_code
    if args.markdown:
        from nccldoctor.reports.markdown import render

        return render(report), report.exit_code
    from nccldoctor.reports.terminal import TerminalSink, make_console

    console = make_console()
    with console.capture() as captured:
        TerminalSink(console=console).emit(report, None)
    return captured.get(), report.exit_code


def as_json(args: argparse.Namespace, section: dict[str, Any], report: Any) -> dict[str, Any]:
    """The comparison as one JSON document: the `baseline` section, the findings, the verdict."""
    return {
        "baseline": str(args.old),
        "run": str(args.new),
        **{key: value for key, value in section.items() if key != "path"},
        "findings": [f.to_dict() for f in report.findings],
        "verdict": report.verdict,
        "exit_code": report.exit_code,
    }


def _write_html(report: Report, args: argparse.Namespace) -> None:
    from nccldoctor.reports.html import write_page

    write_page(report, args.html, f"nccldoctor compare {args.old} {args.new}", "compare --html")
