"""`nccldoctor explain LOG [LOG ...]`: what went wrong in a failed job, from its logs.

LOGs are files, folders (every file below, sorted) or `-` for stdin; plain or gzip. The report
follows the bench's contract (report.json with a `logs` section, report.md, the terminal), and
the exit code says what the logs show: 0 no failure, 1 a failure explained, 3 a failure
nccldoctor cannot explain (unexplained_failure), 2 a LOG that does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nccldoctor.errors import UsageError

HELP = "explain a failed job from its logs (torchrun, Slurm, NCCL): root cause first"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logs", nargs="+", metavar="LOG", help="log files, folders of logs, or - for stdin")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the report into DIR itself")
    parser.add_argument("--quiet", action="store_true", help="findings and verdict only")
    parser.add_argument("--json", action="store_true", help="print report.json on stdout instead of tables")


def run(args: argparse.Namespace) -> int:
    from nccldoctor.explain.reader import expand
    from nccldoctor.explain.report import explain_sources
    from nccldoctor.outdir import prepare_out_dir
    from nccldoctor.reports import emit_all, make_sinks
    from nccldoctor.reports.terminal import TerminalSink

    try:
        sources = expand(args.logs)
    except FileNotFoundError as exc:
        raise UsageError(f"explain: no such log file or folder: {exc}") from None
    if not sources:
        raise UsageError(f"explain: no log files in {' '.join(args.logs)}")
    out = prepare_out_dir(args.out, label="explain-")
    report = explain_sources(sources)
    sinks = make_sinks(args)
    if args.json:  # stdout is the JSON document alone: the files still go to the folder
        sinks = [s for s in sinks if not isinstance(s, TerminalSink)]
    report = emit_all(report, out, sinks)  # redacted: a quoted log line may hold a token
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return report.exit_code
