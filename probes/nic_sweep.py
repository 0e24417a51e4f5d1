"""Per-NIC sweep: the same job on each candidate interface, each in fresh processes.

NCCL reads NCCL_SOCKET_IFNAME once per process and Gloo binds its device when the process
group forms, so a fair comparison runs every interface in new worker processes
(nccldoctor.variants). Each variant measures a large all_reduce (bandwidth) and an 8-byte one
(latency). `iface_slower_than_best` when the best candidate is 1.5x or more faster than the
interface the backend uses by itself: the cheapest speed-up there is. The margin is wide
because each NIC is measured once, on hosts that may be busy; a wrong NIC choice in practice
is a 2.5x-10x gap (1 vs 10 Gb/s, 25 vs 100 Gb/s).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nccldoctor.analysis import NodesOf, wrong_data
from nccldoctor.config import CollectiveOptions
from nccldoctor.findings import Finding, make_finding
from nccldoctor.netif import Choice
from nccldoctor.probes.interfaces import SOCKET_VARIABLE, NodeNet, shared_candidates
from nccldoctor.variants import Variant, VariantOutcome, variant_rows

SLOWER_THAN_BEST = 1 / 1.5  # in-use busbw at or below this fraction of the best candidate's: warn
MIN_ITERS = 10  # timed iterations per NIC at least, so one noisy iteration cannot decide
MIN_WARMUP = 2
LATENCY_BYTES = 8
MIN_BANDWIDTH_BYTES = 1 << 20  # below this a comparison measures latency and noise, not the NIC


def plan_sweep(
    nodes: list[NodeNet], choices: dict[int, Choice], ifaces: str | list[str]
) -> tuple[list[str], str | None, str | None]:
    """(interfaces to sweep, the interface in use on node 0, a usage error or None).

    auto: every up, real interface all nodes share on one subnet, when the job spans nodes
    and there are two or more; off: none; a list: exactly those, each present on every node.
    """
    first = choices[nodes[0].node_rank].names if nodes else []
    in_use = first[0] if first else None
    if ifaces == "off":
        return [], in_use, None
    if ifaces == "auto":
        shared = shared_candidates(nodes) if len(nodes) > 1 else []
        return (shared if len(shared) >= 2 else []), in_use, None
    for name in ifaces:
        lacking = [n for n in nodes if name not in {i.name for i in n.ifaces}]
        if lacking:
            node = lacking[0]
            return (
                [],
                in_use,
                f"--ifaces: node {node.node_rank} ({node.hostname}) has no interface {name!r} "
                f"(it has {', '.join(i.name for i in node.ifaces)})",
            )
    return list(ifaces), in_use, None


def iface_variants(names: list[str], backend: str) -> list[Variant]:
    """One variant per interface: the socket variable set to exactly that name."""
    exact = "=" if backend == "nccl" else ""  # NCCL matches prefixes unless told `=`
    return [Variant("ifaces", name, {SOCKET_VARIABLE[backend]: f"{exact}{name}"}) for name in names]


def sweep_config(config: CollectiveOptions) -> CollectiveOptions:
    """all_reduce at 8 B (latency) and at the run's largest size, at least 1M (bandwidth)."""
    largest = max(config.max_bytes, MIN_BANDWIDTH_BYTES)
    return dataclasses.replace(
        config,
        probes=["all_reduce"],
        expect_busbw={},  # judged on the main run's rows only
        min_bytes=LATENCY_BYTES,
        max_bytes=largest,
        step_factor=max(2, largest // LATENCY_BYTES),
        iters=max(config.iters, MIN_ITERS),
        warmup=max(config.warmup, MIN_WARMUP),
    )


@dataclass
class NicResult:
    iface: str
    setting: str
    busbw_gbps: float | None
    latency_us: float | None
    size_bytes: int | None
    line_rate_mbps: int  # the slowest node's speed for this NIC; 0 unknown
    failed: str | None = None

    @property
    def percent_of_line_rate(self) -> float | None:
        if self.busbw_gbps is None or not self.line_rate_mbps:
            return None
        return 100.0 * self.busbw_gbps * 8e3 / self.line_rate_mbps

    def to_row(self, in_use: str | None) -> dict[str, Any]:
        return {
            "iface": self.iface,
            "in_use": self.iface == in_use,
            "setting": self.setting,
            "busbw_gbps": self.busbw_gbps,
            "size_bytes": self.size_bytes,
            "latency_us": self.latency_us,
            "line_rate_mbps": self.line_rate_mbps or None,
            "percent_of_line_rate": self.percent_of_line_rate,
            "failed": self.failed,
        }


def summarize(outcome: VariantOutcome, nodes: list[NodeNet]) -> NicResult:
    """Bandwidth at the largest size and latency at the smallest, from one variant's rows."""
    name = outcome.variant.name
    speeds = [i.speed_mbps for n in nodes for i in n.ifaces if i.name == name]
    line_rate = min(speeds) if speeds and all(speeds) else 0
    rows = [r for r in outcome.rows if r["probe"] == "all_reduce"]
    if not outcome.ok or not rows:
        return NicResult(name, outcome.variant.setting, None, None, None, line_rate, outcome.why or "no rows")
    largest = max(rows, key=lambda r: r["size_bytes"])
    smallest = min(rows, key=lambda r: r["size_bytes"])
    latency = smallest["time_us"] if smallest["size_bytes"] <= LATENCY_BYTES else None
    return NicResult(
        name, outcome.variant.setting, largest["busbw_gbps"], latency, largest["size_bytes"], line_rate
    )


def judge_sweep(
    results: list[NicResult], in_use: str | None, backend: str, nodes: list[int]
) -> list[Finding]:
    findings = [_failed(r, backend, nodes) for r in results if r.failed]
    measured = [r for r in results if r.busbw_gbps is not None]
    current = next((r for r in measured if r.iface == in_use), None)
    if current is None or not measured:
        return findings
    best = max(measured, key=lambda r: r.busbw_gbps)
    if best.iface != in_use and current.busbw_gbps <= SLOWER_THAN_BEST * best.busbw_gbps:
        findings.append(
            make_finding(
                "iface_slower_than_best",
                f"{backend} uses {in_use} at {current.busbw_gbps:.3f} GB/s busbw, but {best.iface} "
                f"reached {best.busbw_gbps:.3f} GB/s ({_ratio(best, current):.1f}x) in the per-NIC sweep",
                evidence={
                    "in_use": in_use,
                    "best": best.iface,
                    "busbw_gbps": {r.iface: r.busbw_gbps for r in measured},
                },
                nodes=nodes,
                fix=f"export {SOCKET_VARIABLE[backend]}={best.iface}  (on every node)",
            )
        )
    return findings


def _ratio(best: NicResult, current: NicResult) -> float:
    return best.busbw_gbps / max(current.busbw_gbps, 1e-12)


def _failed(result: NicResult, backend: str, nodes: list[int]) -> Finding:
    return make_finding(
        "sweep_variant_failed",
        f"per-NIC sweep: a job on {result.iface} ({result.setting}) failed: {result.failed}",
        nodes=nodes,
        evidence={"iface": result.iface, "setting": result.setting, "error": result.failed},
        fix=f"do not point {SOCKET_VARIABLE[backend]} at {result.iface}; check its link and firewall",
    )


def report_sweep(
    variants: list[Variant],
    outcomes: list[VariantOutcome],
    in_use: str | None,
    backend: str,
    nodes: list[NodeNet],
    nodes_of: NodesOf,
) -> tuple[list[Finding], dict[str, Any]]:
    """Rank 0: the sweep's findings and the report's `nic_sweep` section."""
    results = [summarize(o, nodes) for o in outcomes]
    findings = judge_sweep(results, in_use, backend, [n.node_rank for n in nodes])
    rows = [row for o in outcomes for row in variant_rows(o)]
    for finding in wrong_data(rows, nodes_of):
        finding.message = f"per-NIC sweep: {finding.message}"
        findings.append(finding)
    left = [v.name for v in variants[len(outcomes) :]]
    if left:
        findings.append(
            make_finding(
                "probe_skipped",
                f"per-NIC sweep: no time left for {', '.join(left)} before the deadline",
                evidence={"not_measured": left},
                fix="raise --timeout, or lower --max-bytes",
            )
        )
    section = {
        "backend": backend,
        "in_use": in_use,
        "results": [r.to_row(in_use) for r in results],
        "rows": rows,
    }
    return findings, section
