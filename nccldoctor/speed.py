"""How fast, said in every run: the report's `speed` section (the report writer, from its rows).

Per probe: the peak busbw over the measured sizes and the time at the smallest size (the
latency, 8 B by default). On a multi-node run the peak is also given as a share of the line
rate the backend has between nodes: the speed of the interface it uses (psutil's speed, the
slowest node's), or, for NCCL over InfiniBand/RoCE, the sum of the node's active IB ports
(NCCL spreads its rings over every port; the slowest node's sum). nccl-tests defines busbw so
that it can be compared with the hardware's peak bandwidth whatever the number of ranks
(nccl-tests doc/PERFORMANCE.md), so at the largest sizes a healthy fabric gets most of it.

Speed is judged only against an expectation the user gave (`--expect-busbw`, giving
`low_bandwidth`); without one the section says speed was reported, not judged, and how to
judge it. A share of line rate is shown, never judged: what is normal depends on the transport,
the message sizes measured and, on CPUs, the CPUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nccldoctor.net.infiniband import IbPort, ib_off_on_purpose
from nccldoctor.rows import Row
from nccldoctor.units import three_digits

NORMAL = (
    "on a healthy fabric the largest sizes reach most of the line rate with NCCL over "
    "InfiniBand/RoCE (nccl-tests: busbw is comparable with the slowest link's peak); TCP sockets "
    "and Gloo reach less, and Gloo on CPUs is often limited by the CPUs, not the network"
)
HOW_TO_JUDGE = "--expect-busbw PROBE=GB/s (e.g. all_reduce=40), judged at each probe's largest size"


def speed_section(
    rows: list[Row],
    network: Mapping[str, Any] | None,
    expect_busbw: Mapping[str, float],
    nnodes: int,
    backend: str,
    environ: Mapping[str, str],
) -> dict[str, Any] | None:
    """The `speed` section, or None when no collective was measured."""
    probes = [
        _probe_speed(probe, [r for r in rows if r.probe == probe])
        for probe in dict.fromkeys(r.probe for r in rows)
    ]
    probes = [p for p in probes if p is not None]
    if not probes:
        return None
    line = line_rate(network, backend, environ) if nnodes > 1 else None
    if line is not None:
        for probe in probes:
            probe["share_of_line_rate"] = round(probe["peak_busbw_gbps"] * 8 / line["gbit_s"], 4)
    judged = sorted(expect_busbw)
    return {
        "probes": probes,
        "line_rate": line,
        "judged": judged,
        "note": (
            f"busbw judged against --expect-busbw for {', '.join(judged)}"
            if judged
            else f"speed reported, not judged: give {HOW_TO_JUDGE}"
        ),
        "normal": NORMAL if line is not None else None,
    }


def _probe_speed(probe: str, rows: list[Row]) -> dict[str, Any] | None:
    measured = [r for r in rows if r.busbw_gbps is not None and r.time_us is not None]
    if not measured:
        return None
    peak = max(measured, key=lambda r: r.busbw_gbps)
    smallest = min(r.size_bytes for r in measured)
    latency = min(r.time_us for r in measured if r.size_bytes == smallest)
    return {
        "probe": probe,
        "peak_busbw_gbps": peak.busbw_gbps,
        "peak_at_bytes": peak.size_bytes,
        "latency_us": latency,
        "latency_at_bytes": smallest,
        "world_size": peak.world_size,
    }


def line_rate(
    network: Mapping[str, Any] | None, backend: str, environ: Mapping[str, str]
) -> dict[str, Any] | None:
    """What the backend has between nodes, per node (the slowest node's); None when unknown."""
    nodes = (network or {}).get("nodes") or []
    if not nodes:
        return None
    if backend == "nccl" and not ib_off_on_purpose(environ):
        ports = [[p for p in map(IbPort.from_json, n.get("ib_ports", [])) if p.nccl_usable] for n in nodes]
        if all(ports) and all(p.rate_gbps for node_ports in ports for p in node_ports):
            sums = [sum(p.rate_gbps for p in node_ports) for node_ports in ports]
            slowest = min(range(len(nodes)), key=sums.__getitem__)
            names = ", ".join(p.name for p in ports[slowest])
            return {
                "gbit_s": sums[slowest],
                "via": f"IB/RoCE ports {names}",
                "node": nodes[slowest]["node_rank"],
            }
    speeds = [_chosen_speed(n) for n in nodes]
    if not all(speeds):  # a node's interface has no known speed (virtual, or not reported)
        return None
    slowest = min(range(len(nodes)), key=lambda i: speeds[i][1])
    name, mbps = speeds[slowest]
    return {"gbit_s": mbps / 1000, "via": name, "node": nodes[slowest]["node_rank"]}


def _chosen_speed(node: Mapping[str, Any]) -> tuple[str, int] | None:
    chosen = (node.get("chosen") or [None])[0]
    iface = next((i for i in node.get("interfaces", []) if i["name"] == chosen), None)
    if iface is None or not iface.get("speed_mbps"):
        return None
    return chosen, iface["speed_mbps"]


def gbps(value: float) -> str:
    """GB/s with three significant digits, never an exponent (0.0000117 GB/s, not 0.000)."""
    return f"{three_digits(value)} GB/s"
