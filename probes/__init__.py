"""Probes: one module per probe, each registered here by name.

A probe measures one thing on every rank and returns rows and findings; it never prints
and never writes files (the bench and the report sinks do).

The collective probes load on first use of REGISTRY and friends, so importing one phase's
module (`nccldoctor.probes.network`, `.nic_sweep`, ...) does not import every collective.
"""

import importlib
from typing import Any

COLLECTIVES = ("all_gather", "all_reduce", "all_to_all", "broadcast", "reduce_scatter", "sendrecv")
__all__ = ["REGISTRY", "Probe", "ProbeContext", "ProbeResult", "register"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    base = importlib.import_module("nccldoctor.probes.base")
    for module in COLLECTIVES:  # importing a probe module registers it
        importlib.import_module(f"nccldoctor.probes.{module}")
    return getattr(base, name)
