"""Links between nodes and along the ring: the node-pair matrix as a heat map (row sends, column
receives) and every ring hop's bandwidth, so a slow cable or port stands out as a line or a bar."""

from __future__ import annotations

import math

import matplotlib
import numpy as np

from nccldoctor.nodepairs import node_pair_links
from nccldoctor.report import Report
from nccldoctor.reports.figures import Plot, figure, plot
from nccldoctor.reports.figures.canvas import EXPECTED, OK, SERIES, headroom, new_figure, width_for
from nccldoctor.reports.figures.expected import link_bound
from nccldoctor.units import format_size, three_digits

ANNOTATED_MAX = 16  # nodes: each cell carries its number up to this many
HEATMAP_MAX = 128  # nodes: a heat map up to this many; beyond, the slowest directions as bars
SLOWEST_SHOWN = 24
RING_BARS_MAX = 128  # ring hops drawn as bars; beyond, the slowest hops


@figure("stragglers", order=10)
def draw_node_pairs(report: Report) -> list[Plot]:
    pairs = report.sections["stragglers"].get("node_pairs") or {}
    links = node_pair_links(pairs)
    if not links:
        return []
    nodes = sorted({a for a, _, _ in links} | {b for _, b, _ in links} | set(pairs.get("nodes") or []))
    size = format_size(pairs["size_bytes"])
    bound = link_bound(report, "min_node_pair_gbps")
    if len(nodes) > HEATMAP_MAX:
        return [_slowest_pairs(links, size, bound)]
    position = {node: i for i, node in enumerate(nodes)}
    matrix = np.full((len(nodes), len(nodes)), np.nan)
    for a, b, gbps in links:
        matrix[position[a], position[b]] = gbps
    side = min(8.0, 3.2 + 0.3 * len(nodes))
    fig, ax = new_figure(side * 0.85, width=side + 1.4, right=0.1)
    # From 0, not from the slowest pair: on a healthy fabric 1.2 vs 1.7 GB/s is noise, and a
    # scale stretched between them would paint one link as dark as a broken one.
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#f0f0f0")  # grey: not measured
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, interpolation="nearest", vmin=0)
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85, label=f"GB/s ({size} each way)")
    if bound:
        colorbar.ax.axhline(bound[0], color=EXPECTED, linewidth=2)
    ticks = range(len(nodes)) if len(nodes) <= 32 else range(0, len(nodes), max(1, len(nodes) // 16))
    ax.set_xticks(list(ticks), [str(nodes[i]) for i in ticks])
    ax.set_yticks(list(ticks), [str(nodes[i]) for i in ticks])
    ax.set_xlabel("receiving node")
    ax.set_ylabel("sending node")
    ax.grid(False)
    if len(nodes) <= ANNOTATED_MAX:
        _annotate(ax, matrix)
    measured = "every pair" if "gbps" in pairs else f"{len(links):,} sampled directions\n(grey: not measured)"
    ax.set_title(f"Node pairs, {measured}")
    caption = "Darker is slower. A slow node shows as a dark row (sending) or column (receiving)."
    if bound:
        caption += f" Green on the scale: the expected minimum {bound[0]:g} GB/s ({bound[1]})."
    return [plot("node-pairs", "Node-pair bandwidth", fig, caption)]


def _annotate(ax, matrix: np.ndarray) -> None:
    finite = matrix[np.isfinite(matrix)]
    middle = float(np.median(finite)) if finite.size else 0.0
    for (i, j), value in np.ndenumerate(matrix):
        if math.isfinite(value):
            ax.text(
                j,
                i,
                three_digits(value),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < middle else "black",
            )


def _slowest_pairs(links: list[tuple[int, int, float]], size: str, bound: tuple[float, str] | None) -> Plot:
    slowest = sorted(links, key=lambda link: link[2])[:SLOWEST_SHOWN]
    fig, ax = new_figure(1.0 + 0.22 * len(slowest), left=1.5)
    labels = [f"node {a} → node {b}" for a, b, _ in slowest]
    ax.barh(range(len(slowest)), [gbps for _, _, gbps in slowest], color=OK)
    ax.set_yticks(range(len(slowest)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"GB/s ({size} each way)")
    if bound:
        ax.axvline(bound[0], color=EXPECTED, linestyle=":", label=f"expected ≥ {bound[0]:g} ({bound[1]})")
        ax.legend(loc="lower right")
    ax.set_title(f"Node pairs: the slowest {len(slowest)} of {len(links):,} measured directions")
    return plot(
        "node-pairs", "Slowest node pairs", fig, "Too many nodes for a matrix; report.json has every pair."
    )


@figure("stragglers", order=20)
def draw_ring(report: Report) -> list[Plot]:
    ring = report.sections["stragglers"].get("ring") or []
    if not ring:
        return []
    kinds = list(dict.fromkeys(hop["kind"] for hop in ring))
    color = {kind: SERIES[i % len(SERIES)] for i, kind in enumerate(kinds)}
    hops = ring if len(ring) <= RING_BARS_MAX else sorted(ring, key=lambda h: h["gbps"])[:SLOWEST_SHOWN]
    fig, ax = new_figure(3.0, width=width_for(len(hops)), bottom=0.9 if len(hops) > 16 else 0.6)
    for kind in kinds:
        at = [i for i, hop in enumerate(hops) if hop["kind"] == kind]
        ax.bar(at, [hops[i]["gbps"] for i in at], color=color[kind], width=0.8, label=_kind_label(kind))
    labelled = len(hops) <= 48
    ax.set_xticks(
        range(len(hops)) if labelled else [],
        [f"{h['src_rank']}→{h['dst_rank']}" for h in hops] if labelled else [],
        fontsize=7,
        rotation=90 if len(hops) > 16 else 0,
    )
    ax.set_xlabel("ring hop (sending rank → receiving rank)")
    ax.set_ylabel("GB/s")
    for key, style in (("min_ring_gbps", "-."), ("min_ring_inter_gbps", ":")):
        bound = link_bound(report, key)
        if bound:
            ax.axhline(
                bound[0], color=EXPECTED, linestyle=style, label=f"expected ≥ {bound[0]:g} ({bound[1]})"
            )
    ax.grid(axis="x", visible=False)
    shown = "in ring order" if hops is ring else f"the slowest {len(hops)} of {len(ring):,}"
    ax.set_title(f"Ring links, {shown}:\neach rank sends to the next")
    headroom(ax)
    ax.legend(loc="upper right", ncols=3)
    return [plot("ring", "Ring links", fig, "One bar per hop of the ring (stragglers.ring).")]


def _kind_label(kind: str) -> str:
    return {"ring_inter": "between nodes", "ring_intra": "within a node"}.get(kind, kind)
