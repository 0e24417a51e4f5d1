"""This rank's GPU as NVML knows it, for the health phase and the sweeps (not a phase itself).

`device_uuid` (from nccldoctor.runtime, which publishes it with each rank's RankInfo) names the
rank's CUDA device the way NVML does, so that NVML's per-GPU readings can be tied to the job's
ranks whatever CUDA_VISIBLE_DEVICES renumbered; `pci_bus_id` names it the way sysfs does, for
its NUMA node. `sweep_blocked` is what the per-NIC and settings sweeps do before starting child
processes: free the parent's cached GPU memory, and find out, the same on every rank, whether
children can use the GPUs at all.
"""

from __future__ import annotations

import torch

from nccldoctor.findings import Finding
from nccldoctor.gpuhealth import children_blocked, exclusive_ranks, read_compute_mode
from nccldoctor.phase import PhaseContext
from nccldoctor.runtime import device_uuid, wait_for
from nccldoctor.storeio import get_many

__all__ = ["device_uuid", "free_cuda_cache", "pci_bus_id", "sweep_blocked"]


def pci_bus_id(device: torch.device) -> str | None:
    """This rank's GPU as the PCI bus names it ("0000:53:00.0"); None on a CPU or when torch
    cannot say. NVIDIA GPUs are function 0 of their PCI device."""
    if device.type != "cuda":
        return None
    try:
        props = torch.cuda.get_device_properties(device)
        domain, bus, slot = props.pci_domain_id, props.pci_bus_id, props.pci_device_id
    except (AttributeError, AssertionError, RuntimeError):  # an old torch, no driver, a lost GPU
        return None
    return f"{domain:04x}:{bus:02x}:{slot:02x}.0"


def free_cuda_cache(device: torch.device) -> None:
    """Hand the parent's cached GPU memory back before children start: the DDP benchmark and the
    collectives ran in this process, and its caching allocator keeps what they freed."""
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sweep_blocked(ctx: PhaseContext, sweep: str) -> Finding | None:
    """Before a sweep's children: None if they can run, else the one finding that says why not.

    Every rank reads its own GPU's compute mode and publishes it under the sweep's key, and every
    rank decides from all of them, so the ranks stay in step. On CPUs nothing is asked (the same
    on every rank: the device type is the job's).
    """
    free_cuda_cache(ctx.job.device)
    if ctx.job.device.type != "cuda" or ctx.store is None:
        return None
    mode = read_compute_mode(device_uuid(ctx.job.device))
    ctx.store.set(f"{sweep}/compute_mode/{ctx.job.rank}", "" if mode is None else str(mode))
    keys = [f"{sweep}/compute_mode/{rank}" for rank in range(ctx.job.world_size)]
    wait_for(ctx.store, keys, ctx.remaining_s())
    modes = {rank: int(raw) if raw else None for rank, raw in enumerate(get_many(ctx.store, keys))}
    ranks = exclusive_ranks(modes)
    if not ranks:
        return None
    return children_blocked(SWEEP_TITLES.get(sweep, sweep), ranks, ctx.job.nodes_of(ranks))


SWEEP_TITLES = {"nic_sweep": "per-NIC sweep", "settings_sweep": "settings sweep"}
