"""`nccldoctor preflight --master-addr HOST --master-port PORT ...`: check this node before torchrun.

The checks themselves live in nccldoctor.preflight (no torch there, and none here).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nccldoctor.argtypes import a_path, package_name, seconds, whole_number
from nccldoctor.outdir import prepare_out_dir
from nccldoctor.preflight import DEFAULT_TIMEOUT_S, PreflightConfig, run_preflight
from nccldoctor.reports import emit_all, make_sinks

HELP = "check this node before torchrun: master reachable, interfaces, GPUs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--master-addr", required=True, metavar="HOST", help="the address torchrun will get as --master-addr"
    )
    parser.add_argument(
        "--master-port", required=True, type=whole_number, metavar="PORT", help="torchrun's --master-port"
    )
    parser.add_argument(
        "--nproc-per-node",
        type=whole_number,
        metavar="N",
        help="ranks per node: compared with the GPUs visible on this node",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the report into DIR itself")
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="seconds for each name lookup and the connect",
    )
    parser.add_argument("--quiet", action="store_true", help="findings and verdict only")
    parser.add_argument(
        "--check-package",
        action="append",
        default=[],
        type=package_name,
        metavar="NAME",
        help="show this installed package's version (repeatable; the bench compares it across nodes)",
    )
    parser.add_argument(
        "--code",
        action="append",
        default=[],
        type=a_path,
        metavar="DIR",
        help="show this code tree's digest: git commit and changes, or file digests (repeatable)",
    )
    parser.add_argument(
        "--check-path",
        action="append",
        default=[],
        type=a_path,
        metavar="PATH",
        help="this file or directory must exist and be readable here (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the checks, write and print the report; the exit code is the verdict's."""
    config = config_of(args)
    out = prepare_out_dir(
        config.out, label="preflight-"
    )  # before the checks: a bad --out is bad usage, not a report
    report = run_preflight(config)
    emit_all(report, out, make_sinks(config))
    return report.exit_code


def config_of(args: argparse.Namespace) -> PreflightConfig:
    """The checked config of the parsed flags (a bad value: UsageError)."""
    return PreflightConfig(
        master_addr=args.master_addr,
        master_port=args.master_port,
        nproc_per_node=args.nproc_per_node,
        out=args.out,
        timeout_s=args.timeout,
        quiet=args.quiet,
        packages=tuple(args.check_package),
        code=tuple(args.code),
        paths=tuple(args.check_path),
    )
