"""`nccldoctor show DIR|report.json`: render a saved report; exit with its exit code.

torchrun exits 1 whenever any rank exits non-zero, so this is how a script gets the bench's
own code (0 pass, 1 fail, 3 incomplete) back from a report folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nccldoctor.errors import UsageError

HELP = "render a saved report and exit with its exit code"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="DIR|report.json", help="a report folder or its report.json")
    parser.add_argument("--quiet", action="store_true", help="findings and verdict only")


def run(args: argparse.Namespace) -> int:
    from nccldoctor.reports.json_report import NotAReport, load
    from nccldoctor.reports.terminal import TerminalSink

    path = Path(args.report)
    try:
        report = load(path)
    except FileNotFoundError:
        raise UsageError(f"show: no report at {path}") from None
    except NotAReport as exc:
        raise UsageError(f"show: {path} is not a nccldoctor report.json: {exc}") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not text at all
        raise UsageError(f"show: {path} is not a nccldoctor report.json: it is not JSON ({exc})") from None
    TerminalSink(quiet=args.quiet).emit(report, path)
    return report.exit_code
