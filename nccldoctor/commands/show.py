"""`nccldoctor show DIR|report.json`: render a saved report; exit with its exit code.

torchrun exits 1 whenever any rank exits non-zero, so this is how a script gets the bench's
own code (0 pass, 1 fail, 3 incomplete) back from a report folder. With --exclude it prints
only the Slurm hostlist of the hosts to keep out of the next job (an empty line when none) and
exits 0 once the report was read, so `$(nccldoctor show DIR --exclude)` is safe in a script.
With --html it rebuilds report.html beside the report.json from it (a report of an older
version, or one copied without its page), prints the page's path and exits 0 once written.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nccldoctor.errors import SHAPE_ERRORS, UsageError

if TYPE_CHECKING:
    from nccldoctor.report import Report

HELP = "render a saved report and exit with its exit code"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="DIR|report.json", help="a report folder or its report.json")
    parser.add_argument("--quiet", action="store_true", help="findings and verdict only")
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--html",
        action="store_true",
        help="write report.html beside the report.json, rebuilt from it; print its path; exit 0",
    )
    only.add_argument(
        "--exclude",
        action="store_true",
        help="print only the hosts to exclude, as a Slurm hostlist (gpu[003,017-018]); exit 0",
    )


def run(args: argparse.Namespace) -> int:
    from nccldoctor.reports.json_report import NotAReport, load

    path = Path(args.report)
    try:
        report = load(path)
    except FileNotFoundError:
        raise UsageError(f"show: no report at {path}") from None
    except NotAReport as exc:
        raise UsageError(f"show: {path} is not a nccldoctor report.json: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not text at all
        raise UsageError(f"show: {path} is not a nccldoctor report.json: it is not JSON ({exc})") from None
    try:
        text, code = _render(report, path, args)
    except SHAPE_ERRORS as exc:  # it is rendered in memory first: this is the only line shown
        raise UsageError(
            f"show: {path} is not a report.json this version can read: {type(exc).__name__}: {exc}"
        ) from None
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.write(text)
    return code


def _render(report: Report, path: Path, args: argparse.Namespace) -> tuple[str, int]:
    """What show prints, and its exit code; nothing is printed until all of it rendered."""
    from nccldoctor.redact import redact_report
    from nccldoctor.reports.terminal import TerminalSink, make_console

    if getattr(args, "exclude", False):  # callers that build the Namespace themselves may omit it
        from nccldoctor.gate.exclude import exclude_of

        return f"{exclude_of(report)['slurm']}\n", 0
    if getattr(args, "html", False):
        return f"{_write_html(redact_report(report), path)}\n", 0
    console = make_console()
    with console.capture() as captured:
        # masked as every written report is (outdir.write_report): a report from an older version
        TerminalSink(quiet=args.quiet, console=console).emit(redact_report(report), path)
    return captured.get(), report.exit_code


def _write_html(report: Report, path: Path) -> Path:
    """report.html rebuilt beside the report.json at `path` (a folder or the file); its path."""
    from nccldoctor.reports.html import FILENAME, write_page
    from nccldoctor.reports.json_report import FILENAME as JSON_FILENAME

    source = path / JSON_FILENAME if path.is_dir() else path
    page = source.parent / FILENAME
    write_page(report, page, str(source), "show --html")
    return page
