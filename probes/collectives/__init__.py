"""The collective phases: one per collective the run asks for (`--probes`), in that order.

harness.py is what they share (sizes, buffers, the timed loop, the element-by-element check,
the gather of per-rank times); each collective's module, named as the collective, fills in
only its layout, its call and its expected output, and registers itself. A new collective is
its module here and its bus factor in nccldoctor.bandwidth (which makes it a known --probes
name). A sweep's worker processes run the
same phases under another setting (WORKER_PHASES).
"""

from __future__ import annotations

import importlib

from nccldoctor.config import ALL_PROBES, BenchConfig, CollectiveOptions
from nccldoctor.phase import Phase
from nccldoctor.probes.collectives.harness import REGISTRY, CollectiveProbe

for _name in ALL_PROBES:  # importing a collective's module (named as the collective) registers it
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["REGISTRY", "WORKER_PHASES", "collective_phases", "phases"]


def phases(config: BenchConfig) -> list[Phase]:
    return collective_phases(config.collectives)


def collective_phases(options: CollectiveOptions) -> list[CollectiveProbe]:
    """One phase per collective the options ask for, in the order asked."""
    return [REGISTRY[name](options) for name in options.probes]


WORKER_PHASES = f"{__name__}:collective_phases"  # what a sweep's worker processes run
