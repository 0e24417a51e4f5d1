"""Straggler scores from the compute and step probes, and the findings that name the slow ones.

Each measured kernel (matmul, the step's compute, and on a GPU the memory copy and the
host<->device copies, those only among ranks bound to their GPU's NUMA node) gives every rank a
score: the median rank's time divided by the rank's own time (nccldoctor.stats). A rank's score
combines them as the reciprocal of its mean relative time, so three noisy measurements average
out and a rank slow at any one of them still drops.

A slow rank on a node whose CPUs were oversubscribed while it was measured (more runnable tasks
than cores, or hypervisor steal: nccldoctor.cpupressure) is not named a straggler when its
slowness is within what that crowding explains (score x tasks per core >= EXCUSE_SLACK) and the
node's own CPU quota did not throttle it: the node gets a `host_contention` warning instead, naming
the oversubscription and the ranks it excused. A rank slower than that, or slow on an uncrowded
node, is still a straggler: a gate must not drain a healthy node, nor miss a slow one.

`straggler_node` when more than half of a node's ranks are slow (the node is named: a node-wide
cause such as a CPU quota, a power cap or a noisy neighbour is likelier than that many
independent faults); `straggler_rank` for the slow ranks that are left.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nccldoctor.cpupressure import CpuPressure
from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.hostload import Crowding
from nccldoctor.probes.health.compute import ComputePlan, RankCompute
from nccldoctor.stats import straggler_scores

# Kernel time fields of RankCompute that feed the score (None where not measured). A GPU is
# the rank's own, so every kernel counts. On a CPU the ranks share the cores and the memory
# bus: in a lock-step window all ranks compete at once, and its matmul or copy time says how
# they happened to be shared (healthy ranks ranged from 0.58 to 1.35 with 3 ranks on 2 cores,
# even at their best of three looks). In the step probe a rank that finishes first waits in
# the all_reduce and leaves its core to the others, so each rank's fastest step shows its own
# speed (0.998 to 1.005 in the same runs). On a CPU only that is scored; the rest is shown.
SCORED = ("matmul_s", "copy_s", "step_best_s", "h2d_s", "d2h_s")
SCORED_ON_CPU = ("step_best_s",)
# A pinned host<->device copy from another socket's memory crosses the inter-socket link: a rank
# whose CPUs are not bound to its GPU's NUMA node may be slow there by placement, not by fault.
# These are compared only among ranks bound to their GPU's node (RankCompute.copy_numa_bound).
COPY_KERNELS = ("h2d_s", "d2h_s")


def scored_kernels(device_type: str) -> tuple[str, ...]:
    return SCORED if device_type == "cuda" else SCORED_ON_CPU


@dataclass(frozen=True)
class ScoreThresholds:
    warn: float = 0.9  # a rank below this score (10% slower than the median rank) warns
    fail: float = 0.75  # ... below this, fails

    def __post_init__(self) -> None:
        if not 0 < self.fail < self.warn <= 1:
            raise ValueError(f"straggler thresholds need 0 < fail < warn <= 1, got {self}")


@dataclass(frozen=True)
class RankVerdict:
    rank: int
    node: int
    score: float
    kernel_scores: dict[str, float] = field(default_factory=dict)


def score_ranks(
    computes: list[RankCompute], node_of: list[int], kernels: tuple[str, ...] = SCORED
) -> list[RankVerdict]:
    """Every rank's combined score (index = rank) over the given kernels."""
    per_kernel: dict[str, dict[int, float]] = {}
    for name in kernels:
        ranks = compared_ranks(computes, name)
        times = [getattr(computes[r], name) for r in ranks]
        if ranks and all(t is not None and t > 0 for t in times):
            per_kernel[name] = {r: s.score for r, s in zip(ranks, straggler_scores(times), strict=True)}
    verdicts = []
    for rank in range(len(computes)):
        scores = {name: values[rank] for name, values in per_kernel.items() if rank in values}
        relative = statistics.fmean(1 / s for s in scores.values()) if scores else 1.0
        verdicts.append(RankVerdict(rank, node_of[rank], 1 / relative, scores))
    return verdicts


def compared_ranks(computes: list[RankCompute], name: str) -> list[int]:
    """The ranks whose `name` times are compared: every rank, but for the host<->device copies
    only the ranks bound to their GPU's NUMA node, and those only when there are two or more
    (one alone has nothing to be compared with)."""
    if name not in COPY_KERNELS:
        return list(range(len(computes)))
    bound = [rank for rank, c in enumerate(computes) if c.copy_numa_bound]
    return bound if len(bound) >= 2 else []


def unscored_copies(computes: list[RankCompute]) -> list[int]:
    """Ranks that measured host<->device copies whose copies are shown but not scored."""
    scored = set(compared_ranks(computes, "h2d_s"))
    return [rank for rank, c in enumerate(computes) if c.h2d_s is not None and rank not in scored]


def copies_note(computes: list[RankCompute]) -> str | None:
    """What the report says about copies it did not score; None when every copy counts."""
    unscored = unscored_copies(computes)
    if not unscored:
        return None
    return (
        "host<->device copies are scored only among ranks whose CPUs are bound to their GPU's "
        f"NUMA node (two or more): {_ranks(unscored)} not (copy times shown, not scored); "
        "bind each rank's CPUs to its GPU's node (numactl --cpunodebind, srun --cpu-bind, "
        "torchrun --numa-binding=node) to compare them"
    )


def _ranks(ranks: list[int]) -> str:
    return f"{'rank' if len(ranks) == 1 else 'ranks'} {', '.join(map(str, ranks))}"


def slow_ranks(
    verdicts: list[RankVerdict], thresholds: ScoreThresholds, computes: list[RankCompute]
) -> list[RankVerdict]:
    """Ranks below the warn score whose slowness is more than the step's noise."""
    if len(verdicts) < 2:
        return []
    return [v for v in verdicts if v.score < thresholds.warn and not within_noise(v, computes)]


def within_noise(verdict: RankVerdict, computes: list[RankCompute]) -> bool:
    """True when the step is the rank's only score (on a CPU) and its fastest step is no slower
    than the median rank's mean step. Healthy ranks sharing CPU cores spread that far: on the
    emulated cluster (3 ranks on 2 shared cores) a healthy rank scored 0.82 at its best of three
    looks, and the next run another one did. A rank given less CPU (a quota, 3x the work) is
    slower at its best than the others are on average, every time."""
    if set(verdict.kernel_scores) != {"step_best_s"}:
        return False
    typical = statistics.median(c.step_compute_s for c in computes)
    return computes[verdict.rank].step_best_s <= typical


# score x tasks-per-core at or above this: the crowding explains the rank's slowness. A fair
# scheduler gives each of F tasks per core 1/F of a core, so a rank that drew the short straw
# scores down to about 1/F; the 10% slack is for the scheduler's unevenness within a window.
EXCUSE_SLACK = 0.9


def contention_excuses(slow: list[RankVerdict], pressure: dict[int, CpuPressure]) -> dict[int, Crowding]:
    """Per node: the slow ranks its oversubscription explains (see the module's docstring)."""
    excused: dict[int, list[tuple[int, float]]] = {}
    for verdict in slow:
        cpu = pressure.get(verdict.node)
        if cpu is None or not cpu.oversubscribed or cpu.throttled:
            continue
        if verdict.score * cpu.share_factor >= EXCUSE_SLACK:
            excused.setdefault(verdict.node, []).append((verdict.rank, round(verdict.score, 3)))
    return {node: Crowding(pressure[node], tuple(ranks)) for node, ranks in excused.items()}


def crowded_nodes(node_of: list[int], cpu_counts: dict[int, int]) -> dict[int, str]:
    """CPU nodes running more ranks than they have cores, with why their ranks are not judged
    one against another: there, which rank the scheduler gives a core decides its speed (a
    healthy rank of 4 on 2 cores scored 0.84 at its best of 30 steps)."""
    crowded = {}
    for node, cpus in sorted(cpu_counts.items()):
        ranks = node_of.count(node)
        if cpus and ranks > cpus:
            crowded[node] = f"{ranks} ranks share {cpus} CPU cores"
    return crowded


def judge_stragglers(
    verdicts: list[RankVerdict],
    computes: list[RankCompute],
    thresholds: ScoreThresholds,
    hostnames: dict[int, str],
    crowded: dict[int, str] | None = None,
    excused: dict[int, Crowding] | None = None,
) -> list[Finding]:
    """straggler_node for nodes with most ranks slow, straggler_rank for the other slow ranks,
    except on `crowded` nodes (crowded_nodes), which get one probe_skipped note instead, and
    for the ranks an oversubscribed node's `excused` list holds (contention_excuses)."""
    crowded = crowded or {}
    pardoned = {rank for crowding in (excused or {}).values() for rank, _ in crowding.excused}
    slow = [v for v in slow_ranks(verdicts, thresholds, computes) if v.rank not in pardoned]
    medians = _medians(computes)
    findings = []
    named_nodes = set()
    for node in sorted({v.node for v in slow}):
        on_node = [v for v in verdicts if v.node == node]
        slow_here = [v for v in slow if v.node == node]
        if 2 * len(slow_here) > len(on_node):
            named_nodes.add(node)
            findings.append(_node_finding(node, slow_here, on_node, computes, medians, thresholds, hostnames))
    for verdict in slow:
        if verdict.node not in named_nodes and verdict.node not in crowded:
            findings.append(_rank_finding(verdict, computes[verdict.rank], medians, thresholds, hostnames))
    for node, why in crowded.items():
        findings.append(
            make_finding(
                "probe_skipped",
                f"straggler_rank is not judged on {_where(node, hostnames)}: {why}, so which rank "
                "the scheduler gives a core decides its speed",
                nodes=[node],
                evidence={"probe": "straggler_rank", "why": why},
                fix="run one rank per core (or fewer ranks) to compare the ranks of this node",
            )
        )
    return findings


def judging_inputs(
    computes: list[RankCompute], crowded: dict[int, str], pressure: dict[int, CpuPressure]
) -> dict[str, Any]:
    """What `judge_stragglers` read besides the thresholds, kept in the stragglers section so
    that a saved report can be judged again with other thresholds (--expect's [stragglers])."""
    return {
        "computes": [dataclasses.asdict(c) for c in computes],
        "crowded": {str(node): why for node, why in crowded.items()},
        "cpu_pressure": {str(node): p.to_json() for node, p in pressure.items()},
    }


def rejudge(
    section: Mapping[str, Any], thresholds: ScoreThresholds, hostnames: dict[int, str]
) -> list[Finding] | None:
    """The straggler findings the run would have made with `thresholds`, from its stragglers
    section (the same scores, crowding and excuses; only the thresholds differ). None when the
    section lacks the inputs (a report from before they were kept)."""
    inputs = section.get("judging")
    if not inputs:
        return None
    computes = [RankCompute(**c) for c in inputs["computes"]]
    rows = sorted(section["ranks"], key=lambda row: row["rank"])
    verdicts = [RankVerdict(r["rank"], r["node"], r["score"], r["kernel_scores"]) for r in rows]
    pressure = {int(n): CpuPressure.from_json(p) for n, p in inputs["cpu_pressure"].items()}
    crowded = {int(n): why for n, why in inputs["crowded"].items()}
    excused = contention_excuses(slow_ranks(verdicts, thresholds, computes), pressure)
    return judge_stragglers(verdicts, computes, thresholds, hostnames, crowded, excused)


def _medians(computes: list[RankCompute]) -> dict[str, float]:
    medians = {}
    for name in (*SCORED, "step_wait_s"):
        compared = [computes[r] for r in compared_ranks(computes, name)]
        values = [getattr(c, name) for c in compared if getattr(c, name) is not None]
        if values:
            medians[name] = statistics.median(values)
    return medians


def _severity(score: float, thresholds: ScoreThresholds) -> Severity:
    return Severity.FAIL if score < thresholds.fail else Severity.WARN


def _where(node: int, hostnames: dict[int, str]) -> str:
    return f"node {node}" + (f" ({hostnames[node]})" if node in hostnames else "")


def _rank_evidence(verdict: RankVerdict, compute: RankCompute) -> dict[str, Any]:
    return {
        "rank": verdict.rank,
        "node": verdict.node,
        "score": verdict.score,
        "kernel_scores": verdict.kernel_scores,
        "seconds": {name: getattr(compute, name) for name in (*SCORED, "step_wait_s")},
    }


def _rank_finding(
    verdict: RankVerdict,
    compute: RankCompute,
    medians: dict[str, float],
    thresholds: ScoreThresholds,
    hostnames: dict[int, str],
) -> Finding:
    worst = min(verdict.kernel_scores, key=verdict.kernel_scores.get)
    return make_finding(
        "straggler_rank",
        f"rank {verdict.rank} on {_where(verdict.node, hostnames)} scores {verdict.score:.2f} "
        f"(the median rank is 1.00); slowest at {_kernel_label(worst)}: "
        f"{1 / verdict.kernel_scores[worst]:.2f}x the median rank's time",
        ranks=[verdict.rank],
        nodes=[verdict.node],
        severity=_severity(verdict.score, thresholds),
        evidence={
            **_rank_evidence(verdict, compute),
            "median_seconds": medians,
            "thresholds": {"warn": thresholds.warn, "fail": thresholds.fail},
        },
        fix=_rank_fix(worst, verdict.node, hostnames),
    )


def _node_finding(
    node: int,
    slow_here: list[RankVerdict],
    on_node: list[RankVerdict],
    computes: list[RankCompute],
    medians: dict[str, float],
    thresholds: ScoreThresholds,
    hostnames: dict[int, str],
) -> Finding:
    worst = min(v.score for v in slow_here)
    where = _where(node, hostnames)
    return make_finding(
        "straggler_node",
        f"{where} is slow: {len(slow_here)} of its {len(on_node)} rank(s) score below "
        f"{thresholds.warn:.2f} (worst {worst:.2f}; the median rank is 1.00)",
        ranks=[v.rank for v in slow_here],
        nodes=[node],
        severity=_severity(worst, thresholds),
        evidence={
            "node": node,
            "ranks": [_rank_evidence(v, computes[v.rank]) for v in on_node],
            "median_seconds": medians,
            "thresholds": {"warn": thresholds.warn, "fail": thresholds.fail},
        },
        fix=f"on {where}: look for a CPU or power limit, throttling GPUs and other jobs "
        "(see the host and GPU health tables), or drain the node",
    )


def _kernel_label(name: str) -> str:
    return {
        "matmul_s": "the matmul",
        "copy_s": "the memory copy",
        "step_best_s": "the step's compute",
        "h2d_s": "the host-to-device copy",
        "d2h_s": "the device-to-host copy",
    }[name]


def _rank_fix(worst: str, node: int, hostnames: dict[int, str]) -> str:
    where = _where(node, hostnames)
    if worst in ("h2d_s", "d2h_s"):
        return f"check this GPU's PCIe link on {where} (nvidia-smi -q -d PCI: generation and width)"
    return (
        f"check this rank's GPU or CPU cores on {where}: clocks and throttling (nvidia-smi -q -d "
        "PERFORMANCE), CPU affinity and other processes on those cores"
    )


def rank_rows(
    verdicts: list[RankVerdict],
    computes: list[RankCompute],
    plan: ComputePlan,
    ring_in_gbps: list[float] | None,
    hostnames: dict[int, str],
) -> list[dict[str, Any]]:
    """The per-rank table's rows, slowest first."""
    rows = []
    for verdict, compute in zip(verdicts, computes, strict=True):
        rows.append(
            {
                "rank": verdict.rank,
                "node": verdict.node,
                "host": hostnames.get(verdict.node, ""),
                "score": verdict.score,
                "tflops": plan.tflops(compute.matmul_s),
                "copy_gbps": plan.copy_gbps(compute.copy_s),
                "h2d_gbps": plan.host_device_gbps(compute.h2d_s),
                "d2h_gbps": plan.host_device_gbps(compute.d2h_s),
                "step_compute_ms": compute.step_compute_s * 1e3,
                "step_wait_ms": compute.step_wait_s * 1e3,
                "ring_in_gbps": ring_in_gbps[verdict.rank] if ring_in_gbps else None,
                "gpu_numa_node": compute.gpu_numa_node,
                "copy_numa_bound": compute.copy_numa_bound,
                "kernel_scores": verdict.kernel_scores,
                "within_noise": verdict.score < 1 and within_noise(verdict, computes),
            }
        )
    return sorted(rows, key=lambda row: (row["score"], row["rank"]))
