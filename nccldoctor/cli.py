"""`nccldoctor` console script: the bench and the tools around it.

    nccldoctor bench [flags]          under torchrun, the bench; otherwise the torchrun command
                                      that runs it (torchrun ... -m nccldoctor.bench [flags])
    nccldoctor run [torchrun options] [-- flags]
                                      that torchrun, on this node; exit with the report's code
                                      (0 pass, 1 fail, 2 usage, 3 incomplete), not torchrun's 1
    nccldoctor preflight --master-addr HOST --master-port PORT ...
                                      check this node before torchrun (seconds, no rendezvous)
    nccldoctor show DIR|report.json   render a saved report; exit with its exit code
    nccldoctor codes                  the finding codes, their meaning and fix
    nccldoctor explain LOG [LOG ...]  a failed job's logs: the root cause first, then its consequences
    nccldoctor compare OLD NEW        a run against a known-good one: deltas, regressions, exit 1 on a failure

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
from nccldoctor.errors import OutputError, UsageError
from nccldoctor.findings import EXIT_INCOMPLETE, EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nccldoctor",
        description="Diagnose collective communication. The measurement (the bench) runs under "
        "torchrun on every rank; the other commands run on one node, without torch's start-up.",
        epilog="nccldoctor COMMAND --help tells more about each.",
    )
    parser.add_argument("--version", action="version", version=f"nccldoctor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name in COMMANDS:
        command = load(name)
        # "resolve": a command may replace argparse's -h with its own (the bench shows its flags).
        command.add_arguments(sub.add_parser(name, help=command.HELP, conflict_handler="resolve"))
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command's arguments; a command with FORWARDS_UNKNOWN (the bench) gets the arguments
    nccldoctor does not know as `forwarded`, for its own parser. Any other command refuses them."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if getattr(load(args.command), "FORWARDS_UNKNOWN", False):
        args.forwarded = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    try:
        args = parse_args(argv)
        code = load(args.command).run(args)
    except UsageError as exc:
        print(f"nccldoctor: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except OutputError as exc:  # preflight's or explain's report could not be written
        print(f"nccldoctor: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_INCOMPLETE)
    with contextlib.suppress(BrokenPipeError):  # `show DIR | head -1`: the code is still the report's
        sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
    sys.exit(code)


if __name__ == "__main__":
    main()
