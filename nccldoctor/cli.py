"""`nccldoctor` console script: tools around the bench (which runs under torchrun).

    nccldoctor show DIR|report.json   render a saved report; exit with its exit code
    nccldoctor codes                  the finding codes, their meaning and fix
    nccldoctor preflight --master-addr HOST --master-port PORT ...
                                      check this node before torchrun (seconds, no rendezvous)

Each subcommand is a module of nccldoctor.commands; this only dispatches to it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from nccldoctor import __version__
from nccldoctor.argtypes import Parser
from nccldoctor.commands import COMMANDS, load
from nccldoctor.errors import UsageError
from nccldoctor.findings import EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nccldoctor",
        description="Diagnose collective communication. "
        "The measurement itself runs under torchrun: torchrun ... -m nccldoctor.bench",
    )
    parser.add_argument("--version", action="version", version=f"nccldoctor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        command = load(name)
        command.add_arguments(sub.add_parser(name, help=command.HELP))
    return parser


def main(argv: list[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
        code = load(args.command).run(args)
    except UsageError as exc:
        print(f"nccldoctor: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    with contextlib.suppress(BrokenPipeError):  # `show DIR | head -1`: the code is still the report's
        sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
    sys.exit(code)


if __name__ == "__main__":
    main()
