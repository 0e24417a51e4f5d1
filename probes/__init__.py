"""Probes: every phase of a bench run. Each entry of PHASE_MODULES is a module or a package
with `phases(config) -> list[Phase]`: the phases of its kind this run needs (none, one, or one
per collective). `plan(config)` puts them in run order. Everything else in probes/ is a part
of one of them (the collectives' harness, health's compute and link measurements, the DDP
benchmark's checkpoint; gpu_device: the rank's GPU as NVML names it, for health and the sweeps).

Adding a phase = its module + one line here (+ its section's view in
nccldoctor.reports.sections). A phase measures on every rank and returns rows, findings and
its report section; it never prints and never writes files (the bench and the sinks do).
See docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nccldoctor.config import BenchConfig
    from nccldoctor.phase import Phase

# In run order. The network and consistency phases run before the process group; the rest after it.
PHASE_MODULES = (
    *("network", "consistency"),
    *("collectives", "health", "nccl_check", "ddp", "nic_sweep", "settings_sweep"),
)


def plan(config: BenchConfig) -> list[Phase]:
    """The phases this run needs, in run order."""
    modules = (importlib.import_module(f"{__name__}.{name}") for name in PHASE_MODULES)
    return [phase for module in modules for phase in module.phases(config)]
