"""The deltas between a baseline and a run: collectives, node scores, links and DDP.

Every delta carries both runs' own noise combined (nccldoctor.gate.noise) times the noise
factor, and is judged by `Bar.judge`. A probe is judged on several sizes at once:

- busbw on its bandwidth sizes (from the first where the baseline reached half its peak): the
  peak busbw there, and only when every one of those sizes moved the same way;
- latency on its smallest latency-bound sizes: the lowest time there, same rule.

Peaks and minimums, because contention on a shared machine only ever slows a call down: the
best a run did is its most repeatable number. Each size's own busbw and time are details
(status same, better or worse, never a finding).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pandas as pd

from nccldoctor.gate.bar import Bar, Delta
from nccldoctor.gate.noise import combined, curve_noise, flat_noise, measured, ratio_spread, timing_noise
from nccldoctor.report import Report
from nccldoctor.units import format_size

BANDWIDTH_SHARE = 0.5  # the baseline's busbw at least this share of its peak: a bandwidth size
LATENCY_SHARE = 0.1  # below this share of its peak: a latency-bound size
LATENCY_SIZES = 3  # the smallest latency-bound sizes judge the latency


def section(report: Report, *path: str) -> Any:
    """report.sections[path[0]][path[1]]...; None where a level is missing."""
    value: Any = report.sections
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


# -- collectives ----------------------------------------------------------------------------------
def probe_deltas(old: Report, new: Report, bar: Bar) -> list[Delta]:
    """Per probe in both runs: the judged busbw and latency, then every size's busbw and time."""
    was, now = measured(old.results), measured(new.results)
    timing = (timing_noise(was), timing_noise(now))
    both = was.index.intersection(now.index)
    deltas: list[Delta] = []
    for probe in sorted(both.get_level_values("probe").unique()):
        a, b = (run[run.index.get_level_values("probe") == probe] for run in (was, now))
        keys = both[both.get_level_values("probe") == probe]
        deltas += [d for d in (_busbw(a, b, keys, timing, bar), _latency(a, b, keys, timing, bar)) if d]
        deltas += _size_deltas(a.loc[keys], b.loc[keys], timing, bar)
    return deltas


def bandwidth_keys(was: pd.DataFrame) -> pd.Index:
    """The rows from the first size where the baseline reached BANDWIDTH_SHARE of its peak busbw
    on (a size in the middle that dipped below it is still one of them: its dip is noise)."""
    reached = was.index[was["busbw_gbps"] >= BANDWIDTH_SHARE * was["busbw_gbps"].max()]
    sizes = was.index.get_level_values("size_bytes")
    return was.index[sizes >= reached.get_level_values("size_bytes").min()]


def latency_keys(was: pd.DataFrame) -> pd.Index:
    """The rows of the smallest LATENCY_SIZES sizes where the baseline was latency-bound."""
    bound = was[was["busbw_gbps"] < LATENCY_SHARE * was["busbw_gbps"].max()]
    sizes = sorted(bound.index.get_level_values("size_bytes").unique())[:LATENCY_SIZES]
    return bound.index[bound.index.get_level_values("size_bytes").isin(sizes)]


def _busbw(
    was: pd.DataFrame, now: pd.DataFrame, both: pd.Index, timing: tuple[float, float], bar: Bar
) -> Delta | None:
    """The probe's peak busbw on its bandwidth sizes. Each run's noise: those rows', its curve's
    there, and the run's timing noise (every probe's curve: one machine, the same minutes)."""
    if not was.loc[both, "busbw_gbps"].max() > 0:
        return None
    keys = bandwidth_keys(was.loc[both])
    noises = [
        max(run.loc[keys, "noise"].max(), curve_noise(run, keys), t)
        for run, t in zip((was, now), timing, strict=True)
    ]
    old, new = was.loc[keys, "busbw_gbps"], now.loc[keys, "busbw_gbps"]
    return bar.judge(
        "busbw",
        keys[0][0],
        float(old.max()),
        float(new.max()),
        noise=combined(*noises),
        consistent=_one_way(old, new),
        probe=keys[0][0],
        size_bytes=int(old.idxmax()[1]),
        sizes=_sizes(keys),
    )


def _latency(
    was: pd.DataFrame, now: pd.DataFrame, both: pd.Index, timing: tuple[float, float], bar: Bar
) -> Delta | None:
    """The probe's lowest time on its latency sizes. Each run's noise: those rows', how far
    their times differ (they should not), and the run's timing noise."""
    keys = latency_keys(was.loc[both])
    if keys.empty:
        return None
    noises = [
        max(run.loc[keys, "noise"].max(), flat_noise(run.loc[keys]), t)
        for run, t in zip((was, now), timing, strict=True)
    ]
    old, new = was.loc[keys, "time_us"], now.loc[keys, "time_us"]
    return bar.judge(
        "latency",
        keys[0][0],
        float(old.min()),
        float(new.min()),
        noise=combined(*noises),
        consistent=_one_way(old, new),
        probe=keys[0][0],
        size_bytes=int(old.idxmin()[1]),
        sizes=_sizes(keys),
    )


def _one_way(old: pd.Series, new: pd.Series) -> bool:
    """Every row moved the same way (all up or all down): one noisy size is not a trend."""
    ups = (new > old).to_numpy()
    return bool(ups.all() or not ups.any())


def _sizes(keys: pd.Index) -> list[int]:
    return sorted({int(size) for size in keys.get_level_values("size_bytes")})


def _size_deltas(was: pd.DataFrame, now: pd.DataFrame, timing: tuple[float, float], bar: Bar) -> list[Delta]:
    """Each size's busbw and time; each run's noise: the row's own, or the run's timing noise."""
    deltas = []
    for (probe, size, inplace), old in was.iterrows():
        new = now.loc[(probe, size, inplace)]
        subject = f"{probe} {format_size(size)} {'in-place' if inplace else 'out-of-place'}"
        for metric, column in (("busbw", "busbw_gbps"), ("time", "time_us")):
            delta = bar.judge(
                metric,
                subject,
                float(old[column]),
                float(new[column]),
                noise=combined(max(old["noise"], timing[0]), max(new["noise"], timing[1])),
                judged=False,
                probe=probe,
                size_bytes=int(size),
                inplace=bool(inplace),
            )
            deltas.append(delta)
    return deltas


def run_noise(report: Report) -> float:
    """The run's timing noise (noise.timing_noise) from its collective rows; 0 without any."""
    return timing_noise(measured(report.results))


# -- nodes, links, DDP ----------------------------------------------------------------------------
def node_name(report: Report, node: int) -> str:
    hosts = {n["node_rank"]: n.get("hostname") for n in report.job.get("nodes", [])}
    return f"node {node} ({hosts[node]})" if hosts.get(node) else f"node {node}"


def score_deltas(old: Report, new: Report, bar: Bar) -> list[Delta]:
    """Per node: its ranks' mean compute score. The noise: how far the baseline's ranks already
    scattered, or this run's ranks on the other nodes (a slow node scatters this run's scores
    itself), each never less than its run's timing noise."""
    was, now = (section(r, "stragglers", "ranks") or [] for r in (old, new))
    timing = (run_noise(old), run_noise(new))
    deltas = []
    for node in sorted({r["node"] for r in was} & {r["node"] for r in now}):
        others = [r["score"] for r in now if r["node"] != node]
        noise = combined(
            max(ratio_spread(r["score"] for r in was), timing[0]), max(ratio_spread(others), timing[1])
        )
        deltas.append(
            bar.judge(
                "score",
                node_name(new, node),
                _mean(r["score"] for r in was if r["node"] == node),
                _mean(r["score"] for r in now if r["node"] == node),
                noise=noise,
                nodes=[node],
                ranks=sorted(r["rank"] for r in now if r["node"] == node),
            )
        )
    return deltas


def _mean(values: Iterable[float]) -> float:
    return statistics.fmean(values)


def links(report: Report) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Every measured link by (kind, from, to): node pairs by node, ring links by rank."""
    found: dict[tuple[str, int, int], dict[str, Any]] = {}
    pairs = section(report, "stragglers", "node_pairs") or {}
    nodes = pairs.get("nodes") or []
    for i, row in enumerate(pairs.get("gbps") or []):
        for j, gbps in enumerate(row):
            if gbps is not None:
                found[("node_pair", nodes[i], nodes[j])] = {"gbps": gbps, "nodes": [nodes[i], nodes[j]]}
    for link in section(report, "stragglers", "ring") or []:
        if link.get("gbps") is not None:
            found[(link["kind"], link["src_rank"], link["dst_rank"])] = {
                "gbps": link["gbps"],
                "nodes": [link["src_node"], link["dst_node"]],
                "ranks": [link["src_rank"], link["dst_rank"]],
            }
    return found


def link_deltas(old: Report, new: Report, bar: Bar) -> list[Delta]:
    """Per link (node pairs, ring): GB/s, kind by kind, each kind's slower links blamed together."""
    was, now = links(old), links(new)
    timing = (run_noise(old), run_noise(new))
    common = was.keys() & now.keys()
    deltas = []
    for kind in sorted({key[0] for key in common}):
        keys = sorted(key for key in common if key[0] == kind)
        deltas += blame([_link_delta(key, was, now, timing, new, bar) for key in keys])
    return deltas


def _link_delta(
    key: tuple[str, int, int],
    was: dict[tuple[str, int, int], dict[str, Any]],
    now: dict[tuple[str, int, int], dict[str, Any]],
    timing: tuple[float, float],
    new: Report,
    bar: Bar,
) -> Delta:
    """One link. Each run's noise: how far its links of this kind scatter, how far its two
    measurements of one path differ (path_noise), and never less than the run's timing noise.
    In this run only the other links count: a slow link scatters its own kind and its path."""
    baseline = [v["gbps"] for k, v in was.items() if k[0] == key[0]]
    others = [v["gbps"] for k, v in now.items() if k[0] == key[0] and k != key]
    link = now[key]
    noises = (
        max(ratio_spread(baseline), path_noise(was), timing[0]),
        max(ratio_spread(others), path_noise(now, skip=key), timing[1]),
    )
    return bar.judge(
        "link",
        link_name(new, key, link),
        float(was[key]["gbps"]),
        float(link["gbps"]),
        noise=combined(*noises),
        nodes=sorted(set(link["nodes"])),
        ranks=link.get("ranks", []),
    )


def path_noise(found: dict[tuple[str, int, int], dict[str, Any]], skip: tuple | None = None) -> float:
    """How far one run's two measurements of one path differ: a ring link between two nodes and
    the node-pair link in the same direction move the same bytes between the same nodes (on the
    emulated cluster they differed by up to 1.8x in healthy runs). `skip`: a link left out."""
    worst = 0.0
    for key, link in found.items():
        pair_key = ("node_pair", *link["nodes"])
        if key[0] == "ring_inter" and pair_key in found and skip not in (key, pair_key):
            worst = max(worst, ratio_spread([link["gbps"], found[pair_key]["gbps"]]))
    return worst


def blame(deltas: list[Delta]) -> list[Delta]:
    """Whom one kind's slower links point at: when every link of the kind is slower, the job's
    network path and no node (one NIC setting, a switch); when they all touch one node, that
    node; otherwise each link's two nodes."""
    slower = [d for d in deltas if d.status in ("warn", "fail")]
    if len(slower) < 2:
        return deltas
    if len(slower) == len(deltas):
        note = "as did every link of its kind: the job's network path or settings, not one node"
        return [replace(d, nodes=[], ranks=[], note=note) for d in deltas]
    shared = set.intersection(*(set(d.nodes) for d in slower))
    if len(shared) != 1:
        return deltas
    note = "as did every link of its kind that touches this node"
    return [replace(d, nodes=sorted(shared), ranks=[], note=note) if d in slower else d for d in deltas]


def link_name(report: Report, key: tuple[str, int, int], link: dict[str, Any]) -> str:
    src, dst = link["nodes"]
    if key[0] == "node_pair":
        return f"{node_name(report, src)} -> {node_name(report, dst)}"
    where = f"within {node_name(report, src)}" if src == dst else f"node {src} -> node {dst}"
    return f"ring rank {key[1]} -> rank {key[2]} ({where})"


def ddp_deltas(old: Report, new: Report, bar: Bar) -> list[Delta]:
    """DDP tokens/s. The noise: each run's p95 step time over its p50 (its steps' own spread),
    each never less than its run's timing noise."""
    was, now = (section(r, "ddp", "throughput") or {} for r in (old, new))
    if not was.get("tokens_per_s") or not now.get("tokens_per_s"):
        return []
    steps = [ratio_spread([t.get("step_p50_ms") or 0, t.get("step_p95_ms") or 0]) for t in (was, now)]
    noise = combined(max(steps[0], run_noise(old)), max(steps[1], run_noise(new)))
    return [
        bar.judge("tokens_per_s", "DDP throughput", was["tokens_per_s"], now["tokens_per_s"], noise=noise)
    ]
