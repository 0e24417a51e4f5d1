"""Node-pair links at any scale: which pairs the health phase measures, and how the report keeps them.

Up to `MATRIX_MAX` nodes every pair is measured (`round_robin`: N-1 rounds of disjoint pairs,
both directions at once) and the report keeps the N x N matrix of GB/s, as small clusters are
read pair by pair. Beyond it, N-1 rounds would be 1,023 barriers and N^2 = a million matrix
cells at 1,024 nodes, almost all of them alike. So `SAMPLED_ROUNDS(N)` rounds are measured,
spread evenly over the round-robin schedule: every node is still in that many pairs (each
round pairs every node once), and a slow node's links are all slow, which is what
`slow_link` needs to name it. The report then keeps the measured directions as a list
(`pairs`: [src, dst, GB/s]), N*k entries instead of N^2.

Pure functions of numbers, shared by the health probe (which measures), the report views,
Prometheus and the gate (which read either form through `node_pair_links`).
"""

from __future__ import annotations

import math
from typing import Any

from nccldoctor.bandwidth import algbw_gbps
from nccldoctor.schedule import round_robin

MATRIX_MAX = 16  # nodes: every pair measured, the matrix kept


def sampled_rounds(nnodes: int) -> int:
    """Rounds measured beyond MATRIX_MAX: log2 N + 2 pairs per node (12 at 1,024 nodes)."""
    return math.ceil(math.log2(nnodes)) + 2


def node_pair_rounds(nnodes: int) -> list[list[tuple[int, int]]]:
    """The rounds of disjoint pairs (a, b), a < b, that the health phase measures."""
    rounds = round_robin(nnodes)
    if nnodes <= MATRIX_MAX:
        return rounds
    k = sampled_rounds(nnodes)
    return [rounds[i * len(rounds) // k] for i in range(k)]


def node_pairs_section(
    seconds: dict[tuple[int, int], float], nodes: list[int], size_bytes: int
) -> dict[str, Any]:
    """The report's `stragglers.node_pairs`: seconds[(a, b)] is node position a -> b (measured
    directions only). A matrix (`gbps[a][b]`, None where unmeasured) up to MATRIX_MAX nodes,
    else the measured directions as `pairs` [[src node, dst node, GB/s], ...]."""
    gbps = {
        pair: algbw_gbps(size_bytes, t * 1e6) for pair, t in seconds.items() if t > 0 and pair[0] != pair[1]
    }
    section: dict[str, Any] = {"nodes": nodes, "size_bytes": size_bytes}
    if len(nodes) <= MATRIX_MAX:
        n = len(nodes)
        matrix = [[gbps.get((a, b)) for b in range(n)] for a in range(n)]
        return section | {"gbps": matrix if n > 1 else []}
    return section | {"pairs": [[nodes[a], nodes[b], round(v, 6)] for (a, b), v in sorted(gbps.items())]}


def node_pair_links(section: dict[str, Any] | None) -> list[tuple[int, int, float]]:
    """(src node, dst node, GB/s) of every measured direction, from either form."""
    section = section or {}
    if "pairs" in section:
        return [(int(a), int(b), float(v)) for a, b, v in section["pairs"] if v is not None]
    nodes, matrix = section.get("nodes") or [], section.get("gbps") or []
    # By the matrix, not the node list: one node has `nodes` [0] and an empty `gbps`.
    return [
        (nodes[i], nodes[j], gbps)
        for i, row in enumerate(matrix)
        for j, gbps in enumerate(row)
        if i != j and gbps is not None
    ]


def matrix_seconds(seconds: list[list[float]]) -> dict[tuple[int, int], float]:
    """The measured directions of the probe's all-reduced N x N seconds (0: unmeasured)."""
    return {(a, b): t for a, row in enumerate(seconds) for b, t in enumerate(row) if t > 0 and a != b}
