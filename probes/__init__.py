"""Probes: every phase of a bench run, one module each (big ones may become subpackages).

Each module listed in PHASE_MODULES has `phases(config) -> list[Phase]`: the phases of that
kind this run needs (none, one, or one per collective). `plan(config)` puts them in run order.
Adding a phase = its module + one line here (+ its section view in nccldoctor.reports.sections).

A phase measures on every rank and returns rows, findings and its report section; it never
prints and never writes files (the bench and the report sinks do). The collectives register
in `REGISTRY` (probes.base) by name.

Nothing here imports torch until a phase is planned, so the store-only and report tools stay
fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nccldoctor.config import BenchConfig
    from nccldoctor.phase import Phase

COLLECTIVES = ("all_gather", "all_reduce", "all_to_all", "broadcast", "reduce_scatter", "sendrecv")
# In run order. The network phase runs before the process group; the rest after it.
PHASE_MODULES = ("network", "collective", "health", "nccl_check", "ddp", "nic_sweep", "settings_sweep")
__all__ = ["COLLECTIVES", "PHASE_MODULES", "REGISTRY", "plan", "register"]


def plan(config: BenchConfig) -> list[Phase]:
    """The phases this run needs, in run order."""
    modules = (importlib.import_module(f"nccldoctor.probes.{name}") for name in PHASE_MODULES)
    return [phase for module in modules for phase in module.phases(config)]


def __getattr__(name: str) -> Any:
    if name not in ("REGISTRY", "register"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base = importlib.import_module("nccldoctor.probes.base")
    for module in COLLECTIVES:  # importing a collective's module registers it
        importlib.import_module(f"nccldoctor.probes.{module}")
    return getattr(base, name)
