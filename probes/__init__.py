"""Probes: one module per probe, each registered here by name.

A probe measures one thing on every rank and returns rows and findings; it never prints
and never writes files (the bench and the report sinks do).
"""

from nccldoctor.probes.base import REGISTRY, Probe, ProbeContext, ProbeResult, register

# Importing a probe module registers it.
from nccldoctor.probes import (  # noqa: F401  isort: skip
    all_gather,
    all_reduce,
    all_to_all,
    broadcast,
    reduce_scatter,
    sendrecv,
)

__all__ = ["REGISTRY", "Probe", "ProbeContext", "ProbeResult", "register"]
