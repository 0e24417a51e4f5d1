"""`nccldoctor` console script: tools around the bench (which runs under torchrun).

    nccldoctor show DIR|report.json   render a saved report; exit with its exit code
    nccldoctor codes                  the finding codes, their meaning and fix
    nccldoctor preflight --master-addr HOST --master-port PORT ...
                                      check this node before torchrun (seconds, no rendezvous)

torchrun exits 1 whenever any rank exits non-zero, so `nccldoctor show` is how a script
gets the bench's own code (0 pass, 1 fail, 3 incomplete) back from a report folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from nccldoctor import __version__, preflight
from nccldoctor.argtypes import Parser
from nccldoctor.errors import UsageError
from nccldoctor.findings import CATALOG, EXIT_USAGE


def show(args: argparse.Namespace) -> int:
    from nccldoctor.reports.json_report import load
    from nccldoctor.reports.terminal import TerminalSink

    path = Path(args.report)
    try:
        report = load(path)
    except FileNotFoundError:
        raise UsageError(f"show: no report at {path}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"show: {path} is not a nccldoctor report.json ({exc})") from None
    TerminalSink(quiet=args.quiet).emit(report, path)
    return report.exit_code


def codes(args: argparse.Namespace) -> int:
    try:
        for spec in CATALOG.values():
            print(f"{spec.code} [{spec.severity.value}]\n  meaning: {spec.meaning}\n  fix: {spec.fix}")
    except BrokenPipeError:
        pass  # `nccldoctor codes | head`
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "show": ("render a saved report and exit with its exit code", show),
    "codes": ("list the finding codes with meaning and fix", codes),
    "preflight": (
        "check this node before torchrun: master reachable, interfaces, GPUs",
        preflight.command,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nccldoctor",
        description="Diagnose collective communication. "
        "The measurement itself runs under torchrun: torchrun ... -m nccldoctor.bench",
    )
    parser.add_argument("--version", action="version", version=f"nccldoctor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    show_parser = sub.add_parser("show", help=COMMANDS["show"][0])
    show_parser.add_argument("report", help="a report folder or its report.json")
    show_parser.add_argument("--quiet", action="store_true", help="findings and verdict only")
    sub.add_parser("codes", help=COMMANDS["codes"][0])
    preflight.add_arguments(sub.add_parser("preflight", help=COMMANDS["preflight"][0]))
    return parser


def main(argv: list[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
        code = COMMANDS[args.command][1](args)
    except UsageError as exc:
        print(f"nccldoctor: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    with contextlib.suppress(BrokenPipeError):  # `show DIR | head -1`: the code is still the report's
        sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
    sys.exit(code)


if __name__ == "__main__":
    main()
