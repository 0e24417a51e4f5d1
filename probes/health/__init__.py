"""The straggler and node-health phase (`--health on`, the default), run after the collectives.

Every rank: the compute and step probes (compute.py), the ring links and the node-pair
matrix (links.py), scored and judged by stragglers.py. Meanwhile each node's leader (its
lowest rank) samples its host for host contention (nccldoctor.hostload: the job's processes
are the PIDs its ranks published) and watches its GPUs through NVML while the measurements run
(nccldoctor.gpuhealth.watch_gpus: each GPU's busiest reading), and publishes both through the
store. Every rank publishes its GPU's UUID, so that only the job's GPUs are judged, and
where its host<->device copies run (its GPU's NUMA node, and whether its CPUs are bound to
it: nccldoctor.numa), so that copies are compared only among bound ranks.
Rank 0 judges everything: straggler_rank / straggler_node, slow_link, host_contention and the
gpu_* codes.

A second look: when the first measurement shows a slow rank or link, it is measured again and
each rank or link keeps its better result (ranks: up to COMPUTE_LOOKS measurements in all).
A real straggler is slow every time; a rank that lost a scheduler race once is not. Every
rank takes the same decision from the same gathered numbers, so the ranks stay in step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import torch
import torch.distributed as dist

from nccldoctor.config import BenchConfig, HealthOptions
from nccldoctor.cpupressure import CpuPressure, CpuPressureWatch
from nccldoctor.findings import Finding
from nccldoctor.gpuhealth import GpuInventory, health_rows, judge_gpus, watch_gpus
from nccldoctor.hostload import Crowding, HostSample, host_rows, judge_hosts, sample_host
from nccldoctor.nodepairs import matrix_seconds, node_pairs_section
from nccldoctor.numa import SYSFS, CopyPlacement, copy_placement, this_process_cpus
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.probes.gpu_device import device_uuid, pci_bus_id
from nccldoctor.probes.health.compute import PLACEMENT_FIELDS, RankCompute, gather_floats, measure_compute
from nccldoctor.probes.health.links import (
    LINK_BYTES,
    judge_links,
    links_of_slow_nodes,
    measure_node_pairs,
    measure_ring,
    pair_links,
    ring_links,
    slow_links,
)
from nccldoctor.probes.health.stragglers import (
    ScoreThresholds,
    contention_excuses,
    copies_note,
    crowded_nodes,
    judge_stragglers,
    judging_inputs,
    rank_rows,
    score_ranks,
    scored_kernels,
    slow_ranks,
)
from nccldoctor.runtime import Job, read_rank_infos, wait_for
from nccldoctor.storeio import get_many

# Up to this many measurements while a rank still looks slow, each kernel keeping its best time.
# On a CPU with more ranks than cores a healthy rank lost enough scheduler races to score 0.87
# to 0.90 in one of three CI runs even with two looks; a throttled rank is slow every time.
COMPUTE_LOOKS = 3
HOST_WINDOW_S = 1.0  # the host sample's window; it overlaps the measurements
STEPS = 4  # progress steps: compute, ring, node pairs, node health
GPU_KEY = "health/gpu"  # + "/<rank>": the UUID of the rank's GPU ("" on a CPU)
NAN = float("nan")


def phases(config: BenchConfig) -> list[Phase]:
    return [HealthPhase(config.health)] if config.health.enabled else []


class NodeSampler(threading.Thread):
    """On a node's leader: host contention and NVML, read beside the measurements.

    The host is sampled over HOST_WINDOW_S; the CPUs' crowding (nccldoctor.cpupressure) is
    watched from the start until the phase calls `compute_done()`, so that it covers exactly the
    compute and step probes the straggler scores come from; NVML is read in its own thread from
    the start until the phase calls `gpu_work_done()` (after the links), keeping each GPU's
    busiest reading: the GPU measurements are over in well under a second on an H100, so a
    reading taken after the host window would see idle GPUs and the load rules (SW clock
    limits, PCIe generation) would never apply.
    """

    def __init__(self, job_pids: list[int], max_s: float = 3600.0) -> None:
        super().__init__(name="nccldoctor-node-sampler", daemon=True)
        self.job_pids = job_pids
        self.max_s = max_s  # the GPU watch ends by itself then, should the phase never say so
        self.result: dict[str, Any] = {
            "host": None,
            "gpus": None,
            "cpu": None,
            "error": "not finished in time",
        }
        self.cpu_watch = CpuPressureWatch(max_s=max_s)
        self._gpu_stop = threading.Event()
        self._gpus: dict[str, Any] = {"gpus": None, "error": ""}

    def gpu_work_done(self) -> None:
        self._gpu_stop.set()

    def compute_done(self) -> None:
        self.cpu_watch.stop()

    def run(self) -> None:
        self.cpu_watch.start()
        watcher = threading.Thread(target=self._watch_gpus, name="nccldoctor-gpu-watch", daemon=True)
        watcher.start()
        result: dict[str, Any] = {"host": None, "gpus": None, "cpu": None, "error": ""}
        try:
            result["host"] = sample_host(self.job_pids, HOST_WINDOW_S).to_json()
        except Exception as exc:  # a broken /proc must not stop the measurements
            result["error"] = f"{type(exc).__name__}: {exc}"
        watcher.join()  # ends at gpu_work_done() or max_s
        self.cpu_watch.stop()  # normally stopped already, at compute_done()
        result["cpu"] = self.cpu_watch.result.to_json() if self.cpu_watch.result else None
        result["gpus"] = self._gpus["gpus"]
        result["error"] = "; ".join(e for e in (result["error"], self._gpus["error"]) if e)
        self.result = result

    def _watch_gpus(self) -> None:
        try:
            self._gpus["gpus"] = watch_gpus(self._gpu_stop, max_s=self.max_s).to_json()
        except Exception as exc:  # nor a broken NVML binding
            self._gpus["error"] = f"{type(exc).__name__}: {exc}"


class HealthPhase(Phase):
    name = "health"

    def __init__(self, options: HealthOptions) -> None:
        self.thresholds = ScoreThresholds(warn=options.straggler_warn, fail=options.straggler_fail)

    def planned_steps(self, ctx: PhaseContext) -> int:
        return STEPS

    def run(self, ctx: PhaseContext) -> PhaseResult:
        check = HealthCheck(ctx.job, ctx.store, self.thresholds, ctx.step, ctx.remaining_s)
        findings, sections = check.run()
        return PhaseResult(findings=findings, sections=sections)


class HealthCheck:
    """One run of the health measurements on this rank, and rank 0's judgement."""

    sysfs = SYSFS  # where the GPU's NUMA node and the node's CPUs are read (tests: a fake tree)

    def __init__(
        self,
        job: Job,
        store: dist.Store,
        thresholds: ScoreThresholds,
        step: Callable[[str], None],
        remaining_s: Callable[[], float],
    ) -> None:
        self.job = job
        self.store = store
        self.thresholds = thresholds
        self.step = step
        self.remaining_s = remaining_s
        self.device = job.device

    def run(self) -> tuple[list[Finding], dict[str, Any]]:
        """Every rank measures; rank 0 returns the findings and the report sections."""
        started = time.monotonic()
        # Under the phase's own key, so that rank 0 judges only the GPUs the job uses.
        self.store.set(f"{GPU_KEY}/{self.job.rank}", device_uuid(self.device))
        mine = [float(self.job.launch.node_rank), float(psutil.cpu_count() or 1), *self._placement()]
        rows = gather_floats(mine, self.device)
        placements = [_placement_of(row[2:]) for row in rows]
        node_of = [int(row[0]) for row in rows]
        nodes = sorted(set(node_of))
        cpus = {int(row[0]): int(row[1]) for row in rows}
        crowded = crowded_nodes(node_of, cpus) if self.device.type == "cpu" else {}
        leaders = [node_of.index(node) for node in nodes]
        sampler = self._start_sampler() if self.job.rank in leaders else None
        plan, computes = self._compute(node_of, crowded, placements)
        if sampler is not None:
            sampler.compute_done()
        ring_seconds = self._ring(node_of)
        pair_seconds = self._node_pairs(leaders)
        self.step("node health")
        if sampler is not None:
            sampler.gpu_work_done()
            sampler.join(timeout=max(self.remaining_s(), 0.1))
            self.store.set(f"health/{self.job.launch.node_rank}", json.dumps(sampler.result))
        if self.job.rank != 0:
            return [], {}
        hostnames = {info.node_rank: info.hostname for info in self.job.ranks}
        size = LINK_BYTES[self.device.type]
        links = ring_links(ring_seconds, node_of, size) + pair_links(pair_seconds, leaders, nodes, size)
        published = self._node_health(nodes)
        pressure = {n: CpuPressure.from_json(p["cpu"]) for n, p in published.items() if p.get("cpu")}
        verdicts = score_ranks(computes, node_of, scored_kernels(self.device.type))
        excused = contention_excuses(slow_ranks(verdicts, self.thresholds, computes), pressure)
        findings = judge_stragglers(verdicts, computes, self.thresholds, hostnames, crowded, excused)
        health_findings, health = self._judge_nodes(published, node_of, pressure, excused)
        findings = links_of_slow_nodes(findings + judge_links(links, hostnames), self.device.type)
        ring_in = [link.gbps for link in links if link.kind.startswith("ring")] or None
        stragglers = {
            "seconds": round(time.monotonic() - started, 3),
            "thresholds": dataclasses.asdict(self.thresholds),
            "plan": dataclasses.asdict(plan),
            "ranks": rank_rows(verdicts, computes, plan, ring_in, hostnames),
            "copies": copies_note(computes),
            "link_bytes": size,
            "ring": [dataclasses.asdict(link) for link in links if link.kind.startswith("ring")],
            "node_pairs": node_pairs_section(matrix_seconds(pair_seconds), nodes, size),
            "judging": judging_inputs(computes, crowded, pressure),
        }
        return findings + health_findings, {"stragglers": stragglers, "health": health}

    # -- measuring, with a second look at what seemed slow -----------------------------------
    def _placement(self) -> tuple[float, float]:
        """This rank's GPU NUMA node and whether its CPUs are on it, as floats for the gather
        (NaN: unknown; nothing is asked on a CPU, which copies nothing to a device)."""
        if self.device.type != "cuda":
            return NAN, NAN
        placement = copy_placement(pci_bus_id(self.device), this_process_cpus(), self.sysfs)
        node, bound = placement.gpu_numa_node, placement.bound
        return (NAN if node is None else float(node)), (NAN if bound is None else float(bound))

    def _compute(self, node_of: list[int], crowded: dict[int, str], placements: list[CopyPlacement]):
        self.step("stragglers: compute and step")
        plan, computes = measure_compute(self.device)
        computes = [_placed(c, p) for c, p in zip(computes, placements, strict=True)]
        kernels = scored_kernels(self.device.type)
        for look in range(2, COMPUTE_LOOKS + 1):
            slow = slow_ranks(score_ranks(computes, node_of, kernels), self.thresholds, computes)
            if all(v.node in crowded for v in slow):  # nothing, or nothing that will be judged
                break
            self.step(f"stragglers: look {look} of {COMPUTE_LOOKS}")
            here_crowded = self.job.launch.node_rank in crowded
            with rotated_core(self.device, self.job.launch.local_rank, look, skip=here_crowded):
                _, again = measure_compute(self.device, plan)  # the same work, to compare
            computes = [_faster(a, b) for a, b in zip(computes, again, strict=True)]
        return plan, computes

    def _ring(self, node_of: list[int]) -> list[float]:
        self.step("links: ring")
        seconds = measure_ring(self.device)
        size = LINK_BYTES[self.device.type]
        if slow_links(ring_links(seconds, node_of, size)):
            seconds = [min(a, b) for a, b in zip(seconds, measure_ring(self.device), strict=True)]
        return seconds

    def _node_pairs(self, leaders: list[int]) -> list[list[float]]:
        self.step("links: node pairs")
        if len(leaders) < 2:
            return [[0.0]]
        seconds = measure_node_pairs(self.device, leaders)
        size = LINK_BYTES[self.device.type]
        slow = {
            (min(link.src_node, link.dst_node), max(link.src_node, link.dst_node))
            for link, _ in slow_links(pair_links(seconds, leaders, list(range(len(leaders))), size))
        }
        if slow:  # as positions in `leaders`, which is what measure_node_pairs takes
            again = measure_node_pairs(self.device, leaders, only=slow)
            seconds = [
                [min(a, b) if b > 0 else a for a, b in zip(row, row2, strict=True)]
                for row, row2 in zip(seconds, again, strict=True)
            ]
        return seconds

    # -- node health -----------------------------------------------------------------------------
    def _start_sampler(self) -> NodeSampler:
        infos = read_rank_infos(self.store, self.job.world_size, self.remaining_s())
        pids = [info.pid for info in infos if info.node_rank == self.job.launch.node_rank]
        sampler = NodeSampler(pids, max_s=max(self.remaining_s(), 0.1))
        sampler.start()
        return sampler

    def _node_health(self, nodes: list[int]) -> dict[int, dict[str, Any]]:
        """What each node's leader published: host sample, GPUs, CPU crowding, errors."""
        keys = [f"health/{node}" for node in nodes]
        wait_for(self.store, keys, self.remaining_s())
        return dict(zip(nodes, (json.loads(raw) for raw in get_many(self.store, keys)), strict=True))

    def _judge_nodes(
        self,
        published: dict[int, dict[str, Any]],
        node_of: list[int],
        pressure: dict[int, CpuPressure],
        crowding: dict[int, Crowding],
    ) -> tuple[list[Finding], dict[str, Any]]:
        """Host and GPU findings, and the `health` section."""
        job_gpus = self._job_gpus(node_of)
        hosts = {n: HostSample.from_json(p["host"]) for n, p in published.items() if p["host"]}
        gpus = {n: GpuInventory.from_json(p["gpus"]) for n, p in published.items() if p["gpus"]}
        findings = judge_hosts(hosts, crowding=crowding) + judge_gpus(gpus, job_gpus=job_gpus)
        section = {
            "hosts": host_rows(hosts, pressure, crowding),
            "gpus": health_rows(gpus, job_gpus),
            "errors": {n: p["error"] for n, p in published.items() if p["error"]},
        }
        return findings, section

    def _job_gpus(self, node_of: list[int]) -> dict[int, set[str]]:
        """Per node, the UUIDs of its ranks' GPUs (empty on CPUs: every GPU is then judged)."""
        keys = [f"{GPU_KEY}/{rank}" for rank in range(len(node_of))]
        wait_for(self.store, keys, self.remaining_s())
        job_gpus: dict[int, set[str]] = {}
        for node, raw in zip(node_of, get_many(self.store, keys), strict=True):
            if raw:
                job_gpus.setdefault(node, set()).add(raw.decode())
        return job_gpus


@contextlib.contextmanager
def rotated_core(device: torch.device, local_rank: int, look: int, skip: bool = False) -> Iterator[None]:
    """On a CPU, pin this rank to another of the allowed cores for a second look (rank r on the
    (r + look - 1)-th): a rank that is slow because its core is (a vCPU sharing a physical core,
    a core busy with interrupts) is fast on the next one, and each rank keeps its best look, so
    a slow core is not named as a slow rank; a rank with more work is slow on every core.
    Nothing on a GPU (the GPU is the rank's own) or on a node with more ranks than cores."""
    allowed = sorted(os.sched_getaffinity(0)) if device.type == "cpu" and not skip else []
    if len(allowed) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {allowed[(local_rank + look - 1) % len(allowed)]})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _faster(a: RankCompute, b: RankCompute) -> RankCompute:
    """Each kernel's better time of two measurements (None stays None); `a`'s placement."""
    values = {}
    for f in dataclasses.fields(RankCompute):
        if f.name in PLACEMENT_FIELDS:
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        values[f.name] = x if y is None else y if x is None else min(x, y)
    return dataclasses.replace(a, **values)


def _placement_of(values: list[float]) -> CopyPlacement:
    """A rank's CopyPlacement from its two gathered floats (NaN: unknown)."""
    node, bound = values
    return CopyPlacement(
        gpu_numa_node=None if math.isnan(node) else int(node),
        bound=None if math.isnan(bound) else bool(bound),
    )


def _placed(compute: RankCompute, placement: CopyPlacement) -> RankCompute:
    return dataclasses.replace(
        compute, gpu_numa_node=placement.gpu_numa_node, copy_numa_bound=placement.bound
    )
