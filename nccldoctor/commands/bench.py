"""The bench: `torchrun ... -m nccldoctor.bench [flags]` on every rank, or `nccldoctor bench`.

Under torchrun the entry is nccldoctor.bench -> main() here. It is deliberately thin: it starts
remembering signals before torch is imported (that takes seconds, and torchrun may SIGTERM a
slow rank in the meantime), then hands over to nccldoctor.runner, where the run itself lives,
with the phases (nccldoctor.probes) and the report sinks (nccldoctor.reports): this module is
where they meet. Its flags are declared in nccldoctor.config; build_parser and parse_args here
load it (and torch) only when called.

As the `nccldoctor bench [flags]` subcommand (add_arguments, run) it runs the same bench when
started by torchrun (`torchrun ... --no-python nccldoctor bench [flags]`), and otherwise prints
the torchrun command that would run it and exits 2: one process alone would measure nothing
between ranks.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import TYPE_CHECKING, NoReturn

from nccldoctor.errors import UsageError
from nccldoctor.exitstatus import record as record_exit
from nccldoctor.signals import EarlySignals

if TYPE_CHECKING:
    from nccldoctor.config import BenchConfig

TORCHRUN = "torchrun --standalone --nproc-per-node {nproc} -m nccldoctor.bench"
HELP = (
    f"the measurement, under torchrun: {TORCHRUN.format(nproc='N')} [flags]; "
    "without torchrun, prints that command"
)
FORWARDS_UNKNOWN = True  # the bench's own flags pass through nccldoctor's parser to run()
CPU_RANKS = 2  # no GPU: two Gloo ranks are the fewest that measure between ranks


def build_parser() -> argparse.ArgumentParser:
    from nccldoctor import config

    return config.build_parser()


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    from nccldoctor import config

    return config.parse_args(argv)


def run_bench(argv: list[str] | None = None, early: EarlySignals | None = None) -> int:
    """One rank's whole run: the phases probes.plan gives for its flags, reported through every
    sink in nccldoctor.reports. `early`: the signals received before torch was imported."""
    # These import torch.
    from nccldoctor.probes import plan
    from nccldoctor.runner import run as run_runner

    return run_runner(argv, plan, _sinks, early)


def _sinks(options: object) -> list:
    """The report's sinks, loaded when a report is written: the other ranks never load them
    (nor pandas, which the tables need), which every rank's start-up would pay for."""
    from nccldoctor.reports import make_sinks

    return make_sinks(options)


def main(argv: list[str] | None = None) -> NoReturn:
    early = EarlySignals().install()  # before torch is imported
    code = run_bench(argv, early)
    record_exit(code)  # for `nccldoctor run`, which cannot read it through torchrun
    # The report is on disk. Leave now: interpreter teardown with torch's threads can take
    # seconds, and a SIGTERM from torchrun (another rank already exited) arriving after
    # Python restored the default handlers would turn this rank's exit code into -15.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- `nccldoctor bench` ------------------------------------------------------------------------


class _BenchHelp(argparse.Action):
    """`nccldoctor bench --help`: how to run it, then the bench's own flags (loads torch)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        bench = build_parser()
        bench.prog = TORCHRUN.format(nproc="N")
        print(f"{HELP}\n\n{bench.format_help()}", end="")
        parser.exit()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The flags themselves are the bench's (nccldoctor.config, with torch): declaring them here
    # would load torch for every subcommand, so they are forwarded unparsed (FORWARDS_UNKNOWN).
    parser.usage = "nccldoctor bench [-h] [flags of the bench]"
    parser.add_argument("-h", "--help", action=_BenchHelp, help="how to run the bench, and its flags")


def run(args: argparse.Namespace) -> int:
    """Under torchrun (RANK set): this rank's bench, which never returns. Otherwise the command."""
    flags = list(getattr(args, "forwarded", []))
    if flags[:1] == ["--"]:
        flags = flags[1:]
    if "RANK" in os.environ:
        main(flags)
    raise UsageError(
        f"the bench runs under torchrun, one process per rank: {torchrun_command(flags)} "
        "(on several nodes: --nnodes, --node-rank, --master-addr, --master-port instead of --standalone)"
    )


def torchrun_command(flags: list[str], gpus: int | None = None) -> str:
    """The torchrun line for this node: one rank per visible GPU, else CPU_RANKS on Gloo."""
    command = TORCHRUN.format(nproc=ranks_per_node(gpus))
    return " ".join([command, *map(shlex.quote, flags)])


def ranks_per_node(gpus: int | None = None) -> int:
    """One rank per visible GPU (`gpus`, or NVML's count), else CPU_RANKS on Gloo."""
    if gpus is None:
        from nccldoctor.preflight import count_gpus  # NVML, no torch: fast

        gpus = count_gpus().visible
    return gpus or CPU_RANKS
