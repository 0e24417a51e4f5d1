"""Synthetic reports for the baseline comparison: smooth curves whose noise the test sets.

A curve is time = latency + bytes x bus factor / bandwidth, so it only rises with the size and
its busbw only grows: the noise is exactly what a test puts in (the ranks' spread, a round of
the settings sweep, a size that goes backwards).
"""

from __future__ import annotations

from typing import Any

from nccldoctor.report import Report
from nccldoctor.rows import Row

SIZES = [8, 32, 128, 512, 2048, 8192, 32768, 131072, 524288, 2097152, 8388608]
BUS = {"all_reduce": 2 * 7 / 8, "all_gather": 7 / 8}  # 8 ranks
HOSTS = {0: "gpu-a", 1: "gpu-b"}


def curve(
    probe: str = "all_reduce",
    *,
    gbps: float = 10.0,
    latency_us: float = 20.0,
    spread: float = 0.02,
    sizes: list[int] = SIZES,
    modes: tuple[bool, ...] = (True,),
    dtype: str = "float32",
) -> list[Row]:
    """One probe's rows; `spread`: the ranks' (max - min) / time of every row."""
    rows = []
    for size in sizes:
        for inplace in modes:
            time = latency_us + size * BUS[probe] / (gbps * 1e3)
            rows.append(row(probe, size, time, spread=spread, inplace=inplace, dtype=dtype))
    return rows


def row(
    probe: str,
    size: int,
    time_us: float,
    *,
    spread: float = 0.02,
    inplace: bool = True,
    dtype: str = "float32",
) -> Row:
    algbw = size / time_us / 1e3
    return Row(
        probe=probe,
        size_bytes=size,
        count=size // 4,
        dtype=dtype,
        op="sum" if probe == "all_reduce" else "none",
        root=-1,
        inplace=inplace,
        time_us=time_us,
        algbw_gbps=algbw,
        busbw_gbps=algbw * BUS[probe],
        wrong=0,
        min_time_us=time_us * (1 - spread / 2),
        max_time_us=time_us * (1 + spread / 2),
        slowest_rank=3,
        wrong_ranks=[],
        wrong_sources=[],
        iters=20,
        world_size=8,
    )


def report(
    rows: list[Row],
    *,
    world_size: int = 8,
    backend: str = "nccl",
    torch: str = "2.5.1",
    scores: dict[int, float] | None = None,
    pairs: tuple[float, float] | None = None,
    ring: dict[tuple[int, int], float] | None = None,
    tokens: tuple[float, float, float] | None = None,
    complete: bool = True,
) -> Report:
    """A 2-node x 4-rank report. scores: rank -> score; pairs: GB/s node 0 -> 1 and 1 -> 0;
    ring: (src rank, dst rank) -> GB/s; tokens: (tokens/s, step p50 ms, step p95 ms)."""
    job = {
        "world_size": world_size,
        "nnodes": 2,
        "backend": backend,
        "device": "cuda (NVIDIA H100 80GB HBM3)",
        "versions": {"torch": torch, "cuda": "12.4", "nccl": "2.21.5"},
        "nodes": [
            {"node_rank": n, "hostname": HOSTS[n], "ranks": list(range(4 * n, 4 * n + 4))} for n in (0, 1)
        ],
    }
    sections: dict[str, Any] = {}
    if scores or pairs or ring:
        sections["stragglers"] = stragglers(scores or {}, pairs, ring or {})
    if tokens:
        tokens_per_s, p50, p95 = tokens
        sections["ddp"] = {
            "throughput": {"tokens_per_s": tokens_per_s, "step_p50_ms": p50, "step_p95_ms": p95}
        }
    return Report(job=job, environment={}, results=rows, findings=[], complete=complete, sections=sections)


def stragglers(scores: dict[int, float], pairs: tuple[float, float] | None, ring: dict) -> dict[str, Any]:
    section: dict[str, Any] = {
        "ranks": [{"rank": r, "node": r // 4, "host": HOSTS[r // 4], "score": s} for r, s in scores.items()],
        "ring": [
            {
                "kind": "ring_inter" if src // 4 != dst // 4 else "ring_intra",
                "src_rank": src,
                "dst_rank": dst,
                "src_node": src // 4,
                "dst_node": dst // 4,
                "gbps": gbps,
            }
            for (src, dst), gbps in ring.items()
        ],
        "node_pairs": None,
    }
    if pairs:
        section["node_pairs"] = {
            "nodes": [0, 1],
            "size_bytes": 4 << 20,
            "gbps": [[None, pairs[0]], [pairs[1], None]],
        }
    return section


def even_scores(node1: float = 1.0) -> dict[int, float]:
    """Rank scores: node 0's ranks near 1.0, node 1's at `node1` (2% apart within each node)."""
    return {r: (1.0 if r < 4 else node1) * (1.0 - 0.02 * (r % 2)) for r in range(8)}
