"""Which NUMA node a GPU sits on, and whether this process's CPUs are on that node (Linux sysfs).

A pinned host<->device copy is slower when the host buffer is in another socket's memory: the
data crosses the inter-socket link before it reaches the GPU's PCIe root. Where the buffer lies
follows the CPU that first touches it, so an unbound rank's copy time says as much about where
the scheduler ran it as about its GPU. The health phase therefore compares copy times only of
ranks whose CPU affinity lies within their GPU's NUMA node (`CopyPlacement.bound`).

Everything is read from a sysfs root that tests replace with a fake tree:
`bus/pci/devices/<bus id>/numa_node` (-1: the platform does not say) and
`devices/system/node/node<N>/cpulist`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

SYSFS = Path("/sys")
_NODE_DIR = re.compile(r"node(\d+)")


@dataclass(frozen=True)
class CopyPlacement:
    """Where one rank's host<->device copies run; None: not known (no sysfs, no bus id)."""

    gpu_numa_node: int | None = None
    bound: bool | None = None  # the rank's CPU affinity lies within gpu_numa_node's CPUs


def parse_cpulist(text: str) -> set[int]:
    """CPU numbers from the kernel's list format ("0-3,8-11", "" for none)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def sysfs_bus_id(bus_id: str) -> str:
    """NVML's "00000000:53:00.0" (8-digit domain, upper case) as sysfs names it: "0000:53:00.0"."""
    domain, _, rest = bus_id.strip().partition(":")
    return f"{int(domain, 16):04x}:{rest.lower()}"


def numa_nodes(sysfs: Path = SYSFS) -> list[int]:
    """The host's NUMA nodes; [] where sysfs does not list them (not Linux, a masked /sys)."""
    try:
        names = os.listdir(sysfs / "devices/system/node")
    except OSError:
        return []
    return sorted(int(m.group(1)) for name in names if (m := _NODE_DIR.fullmatch(name)))


def gpu_numa_node(bus_id: str, sysfs: Path = SYSFS) -> int | None:
    """The NUMA node of the PCI device `bus_id`; None when sysfs says -1 or cannot be read."""
    try:
        node = int((sysfs / "bus/pci/devices" / sysfs_bus_id(bus_id) / "numa_node").read_text())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def node_cpus(node: int, sysfs: Path = SYSFS) -> set[int] | None:
    try:
        return parse_cpulist((sysfs / f"devices/system/node/node{node}/cpulist").read_text())
    except (OSError, ValueError):
        return None


def copy_placement(bus_id: str | None, affinity: Collection[int], sysfs: Path = SYSFS) -> CopyPlacement:
    """Whether a rank running on the CPUs `affinity` copies to and from its GPU (`bus_id`)
    through memory on the GPU's own NUMA node."""
    nodes = numa_nodes(sysfs)
    if len(nodes) == 1:
        # One node: every copy is local, whatever the GPU's numa_node says (often -1 there).
        return CopyPlacement(nodes[0], True)
    node = gpu_numa_node(bus_id, sysfs) if bus_id and nodes else None
    if node is None:
        return CopyPlacement()
    cpus = node_cpus(node, sysfs)
    return CopyPlacement(node, None if not cpus else set(affinity) <= cpus)


def this_process_cpus() -> set[int]:
    """The CPUs this process may run on (all of them where the platform cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))
