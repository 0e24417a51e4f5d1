"""`torchrun ... -m nccldoctor.bench [options]`: measure, judge, report, exit with the verdict.

The entry is deliberately thin: it starts remembering signals before torch is imported (that
takes seconds, and torchrun may SIGTERM a slow rank in the meantime), then hands over to
nccldoctor.runner, where the run itself lives, with the phases (nccldoctor.probes) and the
report sinks (nccldoctor.reports): this module is where they meet. Its flags are declared in
nccldoctor.config; build_parser and parse_args here load it (and torch) only when called.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from nccldoctor.signals import EarlySignals

if TYPE_CHECKING:
    from nccldoctor.config import BenchConfig

HELP = "measure and diagnose collective communication (under torchrun, on every rank)"


def build_parser() -> argparse.ArgumentParser:
    from nccldoctor import config

    return config.build_parser()


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    from nccldoctor import config

    return config.parse_args(argv)


def run(argv: list[str] | None = None, early: EarlySignals | None = None) -> int:
    """One rank's whole run: the phases probes.plan gives for its flags, reported through every
    sink in nccldoctor.reports. `early`: the signals received before torch was imported."""
    # These import torch.
    from nccldoctor.probes import plan
    from nccldoctor.reports import make_sinks
    from nccldoctor.runner import run as run_bench

    return run_bench(argv, plan, make_sinks, early)


def main(argv: list[str] | None = None) -> NoReturn:
    early = EarlySignals().install()  # before torch is imported
    code = run(argv, early)
    # The report is on disk. Leave now: interpreter teardown with torch's threads can take
    # seconds, and a SIGTERM from torchrun (another rank already exited) arriving after
    # Python restored the default handlers would turn this rank's exit code into -15.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
