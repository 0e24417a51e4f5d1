"""A synthetic report of a large job (1,024 nodes x 8 ranks by default), shaped like a real one.

Every section is built from the 2-node x 2-rank emulated run in
tests/fixtures/reports/two_nodes.json, its per-node and per-rank entries repeated for every
node and rank (hostnames node0000...), with the problems a big cluster has: one slow node
(`SLOW_NODE`: a low score on its ranks, the slowest links), one node that drops inbound ports
(`BLOCKED_NODE`), and host contention on a few hundred nodes. Used by
benchmarks/report_scale.py and tests/test_report_scale.py.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

from nccldoctor.findings import Severity, make_finding
from nccldoctor.net.fanout import port_plan
from nccldoctor.net.ports import Connected, Listening, judge_ports, port_summary
from nccldoctor.net.sockets import OPEN, TIMEOUT
from nccldoctor.nodepairs import node_pair_rounds, node_pairs_section
from nccldoctor.report import Report
from nccldoctor.rows import Row

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "reports" / "two_nodes.json"
SLOW_NODE = 517
BLOCKED_NODE = 1000


def slow_node(nnodes: int) -> int:
    """SLOW_NODE in a job of `nnodes` (a smaller synthetic job has its slow node too)."""
    return SLOW_NODE % nnodes


def blocked_node(nnodes: int) -> int:
    return BLOCKED_NODE % nnodes


BUSY_SHARE = 0.25  # nodes with host contention: a few hundred of 1,024
PROBES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "alltoall", "sendrecv")


def host(node: int) -> str:
    return f"node{node:04d}"


def synthetic_report(nnodes: int = 1024, per_node: int = 8, seed: int = 0) -> Report:
    """The Report of a `nnodes` x `per_node` run (a pure function of its arguments)."""
    sample = json.loads(FIXTURE.read_text())
    rng = random.Random(seed)
    world = nnodes * per_node
    job = {
        **sample["job"],
        "world_size": world,
        "nnodes": nnodes,
        "nodes": [
            {"node_rank": n, "hostname": host(n), "ranks": list(range(n * per_node, (n + 1) * per_node))}
            for n in range(nnodes)
        ],
    }
    network, port_findings = _network(sample["network"], nnodes)
    stragglers, straggler_findings = _stragglers(sample["stragglers"], nnodes, per_node, rng)
    health, busy_findings = _health(sample["health"], nnodes, per_node, rng)
    sections = {
        "speed": sample["speed"],
        "config": sample["config"],
        "network": network,
        "consistency": {**sample["consistency"], "nodes": _per_node(sample["consistency"]["nodes"], nnodes)},
        "stragglers": stragglers,
        "health": health,
        "ddp": {**sample["ddp"], "ranks": _ddp_ranks(sample["ddp"]["ranks"][0], world, per_node, rng)},
    }
    return Report(
        job=job,
        environment=sample["environment"],
        results=_rows(world, per_node, rng),
        findings=port_findings + straggler_findings + busy_findings,
        sections=sections,
        created=sample["created"],
    )


def _rows(world: int, per_node: int, rng: random.Random) -> list[Row]:
    """6 probes x 12 sizes (8 B to 32 MiB by 4x) x out-of-place and in-place."""
    rows = []
    for probe in PROBES:
        for k in range(12):
            size = 8 * 4**k
            for inplace in (False, True):
                time_us = 50 + size / 2e3 * rng.uniform(0.9, 1.1)
                busbw = size / time_us / 1e3
                rows.append(
                    Row(
                        probe=probe,
                        size_bytes=size,
                        count=size // 4,
                        dtype="float32",
                        op="sum",
                        root=-1,
                        inplace=inplace,
                        time_us=time_us,
                        algbw_gbps=busbw / 2,
                        busbw_gbps=busbw,
                        wrong=0,
                        min_time_us=time_us * 0.95,
                        max_time_us=time_us * 1.4,
                        slowest_rank=slow_node(world // per_node) * per_node,
                        wrong_ranks=[],
                        wrong_sources=[],
                        iters=10,
                        world_size=world,
                    )
                )
    return rows


def _per_node(entries: list[dict[str, Any]], nnodes: int, key: str = "node") -> list[dict[str, Any]]:
    template = entries[0]
    out = []
    for n in range(nnodes):
        entry = copy.deepcopy(template)
        for field in (key, "node_rank"):
            if field in entry:
                entry[field] = n
        for field in ("hostname", "host"):
            if field in entry:
                entry[field] = host(n)
        out.append(entry)
    return out


def _network(sample: dict[str, Any], nnodes: int) -> tuple[dict[str, Any], list]:
    """Every node's inventory; the bounded port plan with BLOCKED_NODE dropping its inbound ports."""
    plan = port_plan(nnodes, seed=7)
    listening = {
        n: Listening(n, f"10.{n // 250}.{n % 250}.1", (32768, 60999), list(range(40000, 40016)), [])
        for n in range(nnodes)
    }
    connected = {
        src: Connected(
            src,
            [
                (dst, p, TIMEOUT if dst == blocked_node(nnodes) else OPEN)
                for dst in plan.targets(src)
                for p in range(40000, 40016)
            ],
            {str(dst): listening[src].address for dst in plan.targets(src)},
        )
        for src in range(nnodes)
    }
    findings = judge_ports(listening, connected, {n: host(n) for n in range(nnodes)})
    section = {
        **sample,
        "nodes": _per_node(sample["nodes"], nnodes, key="node_rank"),
        "ports": port_summary(listening, connected, plan),
    }
    return section, findings


def _stragglers(sample: dict[str, Any], nnodes: int, per_node: int, rng: random.Random):
    template = sample["ranks"][0]
    slow = slow_node(nnodes)
    ranks = []
    for rank in range(nnodes * per_node):
        node = rank // per_node
        score = rng.uniform(0.3, 0.4) if node == slow else rng.uniform(0.93, 1.05)
        ranks.append(
            {**copy.deepcopy(template), "rank": rank, "node": node, "host": host(node), "score": score}
        )
    ranks.sort(key=lambda r: r["score"])  # the table starts with the slowest, as the probe writes it
    ring_template = sample["ring"][0]
    world = nnodes * per_node
    ring = [
        {
            **ring_template,
            "src_rank": (r - 1) % world,
            "dst_rank": r,
            "src_node": ((r - 1) % world) // per_node,
            "dst_node": r // per_node,
            "kind": "ring_inter" if r % per_node == 0 else "ring_intra",
        }
        for r in range(world)
    ]
    seconds = _pair_seconds(nnodes, rng)
    section = {
        **sample,
        "ranks": ranks,
        "ring": ring,
        "node_pairs": node_pairs_section(seconds, list(range(nnodes)), sample["link_bytes"]),
    }
    slow_ranks = list(range(slow * per_node, (slow + 1) * per_node))
    findings = [
        make_finding(
            "straggler_node",
            f"node {slow} ({host(slow)}): all {per_node} ranks score 0.3-0.4",
            nodes=[slow],
            ranks=slow_ranks,
            severity=Severity.FAIL,
            evidence={"scores": {str(r): 0.35 for r in slow_ranks}},
        ),
        make_finding(
            "slow_link",
            f"every slow node-pair link touches node {slow} ({host(slow)})",
            nodes=[slow],
        ),
    ]
    return section, findings


def _pair_seconds(nnodes: int, rng: random.Random) -> dict[tuple[int, int], float]:
    """Seconds per measured direction of the node-pair rounds; SLOW_NODE's links 10x slower."""
    seconds = {}
    for pairs in node_pair_rounds(nnodes):
        for a, b in pairs:
            for src, dst in ((a, b), (b, a)):
                slow = slow_node(nnodes) in (src, dst)
                seconds[(src, dst)] = rng.uniform(0.004, 0.005) * (10 if slow else 1)
    return seconds


def _health(sample: dict[str, Any], nnodes: int, per_node: int, rng: random.Random):
    hosts = _per_node(sample["hosts"], nnodes)
    busy = sorted(rng.sample(range(nnodes), int(nnodes * BUSY_SHARE)))
    findings = []
    for n in busy:
        hosts[n] |= {"foreign_cores": 3.5, "status": "cpu", "top_process": "1234 python 3.4"}
        findings.append(
            make_finding(
                "host_contention",
                f"node {n} ({host(n)}): 3.5 cores used outside the job",
                nodes=[n],
                evidence={"reasons": ["cpu"], "foreign_cores": 3.5},
            )
        )
    gpus = [
        {"node": n, "gpu": g, "name": "NVIDIA H100 80GB HBM3", "temp_c": 40 + g, "power_w": 120.0}
        for n in range(nnodes)
        for g in range(per_node)
    ]
    return {**sample, "hosts": hosts, "gpus": gpus}, findings


def _ddp_ranks(
    template: dict[str, Any], world: int, per_node: int, rng: random.Random
) -> list[dict[str, Any]]:
    return [
        {
            **template,
            "rank": r,
            "node": r // per_node,
            "step_p50_ms": template["step_p50_ms"] * rng.uniform(0.95, 1.05),
        }
        for r in range(world)
    ]
