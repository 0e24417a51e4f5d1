"""The per-NIC sweep's plan and the judgement of what it measured; nothing here runs a process.

The sweep (nccldoctor.probes.nic_sweep) runs the same job on each candidate interface in fresh
worker processes, measuring a large all_reduce (bandwidth) and an 8-byte one (latency).
`plan_sweep` chooses the interfaces; `report_sweep` turns the variants' rows into findings and
the report's `nic_sweep` section. `iface_slower_than_best` when the best candidate is 1.5x or
more faster than the interface the backend uses by itself: the cheapest speed-up there is. The
margin is wide because each NIC is measured once, on hosts that may be busy; a wrong NIC choice
in practice is a 2.5x-10x gap (1 vs 10 Gb/s, 25 vs 100 Gb/s).

On NCCL over InfiniBand/RoCE, NCCL_SOCKET_IFNAME moves only the bootstrap's TCP traffic: the data
goes over every active HCA port whatever it says, so socket variants would all measure the same
path. There `plan_nic_sweep` sweeps the IB ports instead (NCCL_IB_HCA, one port each), and as
NCCL has no single port "in use", `ib_port_slow` names a port 1.5x or more slower than the best.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nccldoctor.analysis import NodesOf, wrong_data
from nccldoctor.findings import Finding, make_finding
from nccldoctor.net.infiniband import IbPort, ib_off_on_purpose
from nccldoctor.net.interfaces import SOCKET_VARIABLE, Choice
from nccldoctor.net.inventory import NodeNet
from nccldoctor.net.judge import shared_candidates

if TYPE_CHECKING:  # nccldoctor.variants imports torch; nccldoctor.net must not
    from nccldoctor.variants import Variant, VariantOutcome

SLOWER_THAN_BEST = 1 / 1.5  # in-use busbw at or below this fraction of the best candidate's: warn
LATENCY_BYTES = 8  # the sweep's smallest all_reduce: its time is the latency
IB_VARIABLE = "NCCL_IB_HCA"  # which HCA ports NCCL's NET/IB carries data over


@dataclass(frozen=True)
class SweepPlan:
    """What the per-NIC sweep runs: one variant per name, each setting `variable` to exactly it."""

    names: list[str]
    variable: str  # NCCL_SOCKET_IFNAME, GLOO_SOCKET_IFNAME or NCCL_IB_HCA
    in_use: str | None = None  # the swept name the backend uses by itself; None on IB (every port)
    usage: str | None = None  # --ifaces names what a node lacks: the run stops with this
    note: str | None = None  # for the report's reader: what the sweep cannot tell on this job


def plan_nic_sweep(
    nodes: list[NodeNet],
    choices: dict[int, Choice],
    ifaces: str | list[str],
    backend: str,
    env: Mapping[str, str],
) -> SweepPlan:
    """The sweep for this job: IB ports where NCCL carries data over IB (`env`: rank 0's, which
    the variants' children inherit), else the socket interfaces `plan_sweep` picks."""
    socket = SOCKET_VARIABLE[backend]
    on_ib = nccl_uses_ib(nodes, backend, env)
    if on_ib and ifaces == "auto":
        shared = shared_ib_ports(nodes)
        return SweepPlan(shared if len(shared) >= 2 else [], IB_VARIABLE)
    if on_ib and ifaces != "off" and all(is_ib_name(name, nodes) for name in ifaces):
        return SweepPlan(list(ifaces), IB_VARIABLE, usage=_lacking_ib(nodes, ifaces))
    names, in_use, usage = plan_sweep(nodes, choices, ifaces)
    note = socket_on_ib_note(nodes) if on_ib and names else None
    return SweepPlan(names, socket, in_use, usage, note)


def nccl_uses_ib(nodes: list[NodeNet], backend: str, env: Mapping[str, str]) -> bool:
    """NCCL would carry data between the nodes over IB/RoCE: every node has a port NET/IB takes,
    and `env` does not ask for sockets (NCCL_IB_DISABLE, NCCL_NET=Socket)."""
    return (
        backend == "nccl"
        and len(nodes) > 1
        and all(usable_ports(n) for n in nodes)
        and not ib_off_on_purpose(env)
    )


def usable_ports(node: NodeNet) -> list[IbPort]:
    return [p for p in node.ib_ports if p.nccl_usable]


def shared_ib_ports(nodes: list[NodeNet]) -> list[str]:
    """Ports ("mlx5_0:1") NET/IB can use on every node, in node 0's order."""
    if not nodes:
        return []
    elsewhere = [{p.name for p in usable_ports(n)} for n in nodes[1:]]
    return [p.name for p in usable_ports(nodes[0]) if all(p.name in names for names in elsewhere)]


def _is_named(port: IbPort, name: str) -> bool:
    """`name` is the port ("mlx5_0:1") or its whole device ("mlx5_0"), as NCCL_IB_HCA takes either."""
    return name in (port.name, port.device)


def is_ib_name(name: str, nodes: list[NodeNet]) -> bool:
    return any(_is_named(p, name) for n in nodes for p in n.ib_ports)


def _lacking_ib(nodes: list[NodeNet], names: list[str]) -> str | None:
    """A usage error for the first name some node has no usable port for; None when all do."""
    for name in names:
        for node in nodes:
            usable = usable_ports(node)
            if not any(_is_named(p, name) for p in usable):
                have = ", ".join(p.name for p in usable) or "none"
                return (
                    f"--ifaces: node {node.node_rank} ({node.hostname}) has no active InfiniBand/RoCE "
                    f"port {name!r} (its active ports: {have})"
                )
    return None


def socket_on_ib_note(nodes: list[NodeNet]) -> str:
    example = ",".join(shared_ib_ports(nodes)[:2]) or "mlx5_0:1,mlx5_1:1"
    return (
        "NCCL carries this job's data between nodes over InfiniBand/RoCE, so NCCL_SOCKET_IFNAME "
        "moves only its bootstrap traffic: these interfaces all measure the same IB path "
        f"(to compare IB ports: --ifaces {example}, or auto)"
    )


def exact_value(variable: str, name: str) -> str:
    """The value that selects exactly `name`: NCCL's lists match prefixes unless told `=`."""
    return f"={name}" if variable.startswith("NCCL_") else name


def line_rate_mbps(name: str, nodes: list[NodeNet], variable: str | None = None) -> int:
    """The slowest node's line rate for a swept name, in Mb/s; 0 when a node does not report it.

    An IB name counts every usable port it selects on a node (a device: all its ports)."""
    if variable == IB_VARIABLE:
        gbps = [sum(p.rate_gbps for p in usable_ports(n) if _is_named(p, name)) for n in nodes]
        return round(min(gbps) * 1000) if gbps and all(gbps) else 0
    speeds = [i.speed_mbps for n in nodes for i in n.ifaces if i.name == name]
    return min(speeds) if speeds and all(speeds) else 0


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


def summarize(outcome: VariantOutcome, nodes: list[NodeNet], variable: str | None = None) -> NicResult:
    """Bandwidth at the largest size and latency at the smallest, from one variant's rows."""
    name = outcome.variant.name
    line_rate = line_rate_mbps(name, nodes, variable)
    rows = [r for r in outcome.rows if r.probe == "all_reduce"]
    if not outcome.ok or not rows:
        return NicResult(name, outcome.variant.setting, None, None, None, line_rate, outcome.why or "no rows")
    largest = max(rows, key=lambda r: r.size_bytes)
    smallest = min(rows, key=lambda r: r.size_bytes)
    latency = smallest.time_us if smallest.size_bytes <= LATENCY_BYTES else None
    return NicResult(
        name, outcome.variant.setting, largest.busbw_gbps, latency, largest.size_bytes, line_rate
    )


def judge_sweep(
    results: list[NicResult],
    in_use: str | None,
    backend: str,
    nodes: list[int],
    variable: str | None = None,
) -> list[Finding]:
    """`variable`: what the sweep set (None: the backend's socket variable)."""
    variable = variable or SOCKET_VARIABLE[backend]
    findings = [_failed(r, variable, nodes) for r in results if r.failed]
    measured = [r for r in results if r.busbw_gbps is not None]
    if not measured:
        return findings
    if variable == IB_VARIABLE:
        return findings + slow_ib_ports(measured, nodes)
    return findings + _slower_than_best(measured, in_use, backend, nodes)


def _slower_than_best(
    measured: list[NicResult], in_use: str | None, backend: str, nodes: list[int]
) -> list[Finding]:
    current = next((r for r in measured if r.iface == in_use), None)
    best = max(measured, key=lambda r: r.busbw_gbps)
    if current is None or best.iface == in_use or current.busbw_gbps > SLOWER_THAN_BEST * best.busbw_gbps:
        return []
    return [
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
    ]


def slow_ib_ports(measured: list[NicResult], nodes: list[int]) -> list[Finding]:
    """NCCL uses every port at once, so a slow one holds back its share of every transfer:
    each port 1.5x or more slower than the best is named."""
    best = max(measured, key=lambda r: r.busbw_gbps)
    busbw = {r.iface: r.busbw_gbps for r in measured}
    return [
        _ib_port_slow(r, best, busbw, nodes)
        for r in measured
        if r is not best and r.busbw_gbps <= SLOWER_THAN_BEST * best.busbw_gbps
    ]


def _ib_port_slow(slow: NicResult, best: NicResult, busbw: dict[str, float], nodes: list[int]) -> Finding:
    return make_finding(
        "ib_port_slow",
        f"per-NIC sweep: IB port {slow.iface} reached {slow.busbw_gbps:.3f} GB/s busbw, "
        f"{_ratio(best, slow):.1f}x below {best.iface} ({best.busbw_gbps:.3f} GB/s)",
        evidence={"port": slow.iface, "best": best.iface, "busbw_gbps": busbw},
        nodes=nodes,
        fix=f"check {slow.iface} on every node: ibstat (State Active, the Rate it should have), "
        f"its cable and switch port; meanwhile export {IB_VARIABLE}=^={slow.iface}  (on every node)",
    )


def _ratio(best: NicResult, current: NicResult) -> float:
    return best.busbw_gbps / max(current.busbw_gbps, 1e-12)


def _failed(result: NicResult, variable: str, nodes: list[int]) -> Finding:
    if variable == IB_VARIABLE:  # NCCL takes every active port by default: it must be left out
        fix = f"check {result.iface} with ibstat on every node; meanwhile "
        fix += f"export {IB_VARIABLE}=^={result.iface}"
    else:
        fix = f"do not point {variable} at {result.iface}; check its link and firewall"
    return make_finding(
        "sweep_variant_failed",
        f"per-NIC sweep: a job on {result.iface} ({result.setting}) failed: {result.failed}",
        nodes=nodes,
        evidence={"iface": result.iface, "setting": result.setting, "error": result.failed},
        fix=fix,
    )


def report_sweep(
    variants: list[Variant],
    outcomes: list[VariantOutcome],
    in_use: str | None,
    backend: str,
    nodes: list[NodeNet],
    nodes_of: NodesOf,
    variable: str | None = None,
    note: str | None = None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Rank 0: the sweep's findings and the report's `nic_sweep` section. `variable`: what the
    variants set (None: the backend's socket variable); `note`: the plan's, for the reader."""
    from nccldoctor.variants import variant_rows  # here, not at the top: variants imports torch

    variable = variable or SOCKET_VARIABLE[backend]
    results = [summarize(o, nodes, variable) for o in outcomes]
    findings = judge_sweep(results, in_use, backend, [n.node_rank for n in nodes], variable)
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
        "variable": variable,  # NCCL_IB_HCA: `iface` in each result is an IB port
        "note": note,
        "in_use": in_use,
        "results": [r.to_row(in_use) for r in results],
        "rows": [row.to_dict() for row in rows],
    }
    return findings, section
