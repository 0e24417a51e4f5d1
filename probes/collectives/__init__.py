"""The collective phases: one per collective the run asks for (`--probes`), in that order.

harness.py is what they share (sizes, buffers, the timed loop, the element-by-element check,
the gather of per-rank times); each collective's module fills in only its layout, its call
and its expected output, and registers itself by name. A sweep's worker processes run the
same phases under another setting (WORKER_PHASES).
"""

from __future__ import annotations

from nccldoctor.config import BenchConfig, CollectiveOptions
from nccldoctor.phase import Phase
from nccldoctor.probes.collectives import (  # noqa: F401  (importing a collective registers it)
    all_gather,
    all_reduce,
    all_to_all,
    broadcast,
    reduce_scatter,
    sendrecv,
)
from nccldoctor.probes.collectives.harness import REGISTRY, CollectiveProbe

__all__ = ["REGISTRY", "WORKER_PHASES", "collective_phases", "phases"]


def phases(config: BenchConfig) -> list[Phase]:
    return collective_phases(config.collectives)


def collective_phases(options: CollectiveOptions) -> list[CollectiveProbe]:
    """One phase per collective the options ask for, in the order asked."""
    return [REGISTRY[name](options) for name in options.probes]


WORKER_PHASES = f"{__name__}:collective_phases"  # what a sweep's worker processes run
