"""The health phase's sections: straggler scores per rank, links between nodes, hosts, GPUs."""

from __future__ import annotations

import pandas as pd

from nccldoctor.nodepairs import node_pair_links
from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, capped, view
from nccldoctor.reports.tables import number
from nccldoctor.units import format_size

ROWS_SHOWN = 10  # per-rank rows and slowest pairs shown; report.json has them all


MATRIX_NODES = 12  # node-pair matrix up to this many nodes; beyond, the slowest pairs


def rank_table(report: Report) -> tuple[str, pd.DataFrame] | None:
    """Per rank, slowest first: score, compute rates, step split and ring link."""
    section = report.sections.get("stragglers")
    if not section or not section.get("ranks"):
        return None
    rows = section["ranks"]
    ddp = {r["rank"]: r for r in (report.sections.get("ddp") or {}).get("ranks", [])}
    lines = [
        [
            r["rank"],
            f"{r['node']} {r['host']}".strip(),
            f"{r['score']:.2f}",
            number(r["tflops"], ".3f"),
            number(r["copy_gbps"], ".1f"),
            _copy_cell(r, "h2d"),
            _copy_cell(r, "d2h"),
            f"{r['step_compute_ms']:.2f}",
            f"{r['step_wait_ms']:.2f}",
            number(r["ring_in_gbps"], ".3f"),
            *([number(ddp.get(r["rank"], {}).get("compute_p50_ms"), ".1f")] if ddp else []),
        ]
        for r in rows[:ROWS_SHOWN]
    ]
    columns = ["rank", "node", "score", "TFLOP/s", "copy GB/s", "H2D GB/s", "D2H GB/s"]
    columns += ["step compute (ms)", "step wait (ms)", "ring in (GB/s)"]
    columns += ["DDP compute p50 (ms)"] if ddp else []
    shown = f"slowest {ROWS_SHOWN} of {len(rows)}" if len(rows) > ROWS_SHOWN else f"{len(rows)}"
    title = f"Ranks ({shown}, slowest first; score = median rank's time / the rank's)"
    if any(_copy_unscored(r, "h2d") for r in rows[:ROWS_SHOWN]):
        title += f"; {UNSCORED_MARK} copy not scored: CPUs not bound to the GPU's NUMA node"
    return title, pd.DataFrame(lines, columns=columns)


UNSCORED_MARK = "*"


def _copy_unscored(row: dict, kind: str) -> bool:
    """A copy measured but left out of the score (an unbound rank's: see stragglers.copies)."""
    return row[f"{kind}_gbps"] is not None and f"{kind}_s" not in row.get("kernel_scores", {})


def _copy_cell(row: dict, kind: str) -> str:
    cell = number(row[f"{kind}_gbps"], ".1f")
    return f"{cell}{UNSCORED_MARK}" if _copy_unscored(row, kind) else cell


def node_pair_table(report: Report) -> tuple[str, pd.DataFrame] | None:
    """GB/s between node leaders: the matrix (row sends, column receives), or the slowest pairs."""
    pairs = (report.sections.get("stragglers") or {}).get("node_pairs") or {}
    gbps, nodes = pairs.get("gbps"), pairs.get("nodes", [])
    if not gbps and not pairs.get("pairs"):
        return None
    size = format_size(pairs["size_bytes"])
    if gbps and len(nodes) <= MATRIX_NODES:
        lines = [[f"node {a}", *(number(v, ".3f") for v in row)] for a, row in zip(nodes, gbps, strict=True)]
        frame = pd.DataFrame(lines, columns=["from \\ to", *(f"node {b}" for b in nodes)])
        return f"Node pairs (GB/s, {size} each way, row sends to column)", frame
    measured = sorted((v, a, b) for a, b, v in node_pair_links(pairs))
    lines = [[f"node {a} -> node {b}", f"{v:.3f}"] for v, a, b in measured[:ROWS_SHOWN]]
    title = f"Node pairs (slowest {ROWS_SHOWN} of {len(measured)} directions, {size} each way)"
    return title, pd.DataFrame(lines, columns=["link", "GB/s"])


def host_table(report: Report) -> pd.DataFrame | None:
    """Per node: CPU used inside and outside the job, its busiest outside process, memory, swap."""
    rows = (report.sections.get("health") or {}).get("hosts")
    if not rows:
        return None
    lines = [
        [
            f"{r['node']} {r['host']}",
            r["cpus"],
            f"{r['load1']:.1f}",
            f"{r['job_cores']:.2f}",
            f"{r['foreign_cores']:.2f}",
            r["top_process"] or "-",
            f"{r['mem_available_pct']:.0f}",
            number(r["psi_some_avg10"], ".1f"),
            f"{r['swap_mib_per_s']:g}",
            r["status"],
        ]
        for r in sorted(rows, key=lambda r: r["status"] == "ok")  # the busy hosts first
    ]
    columns = ["node", "CPUs", "load 1m", "job cores", "other cores", "busiest other (PID name cores)"]
    return pd.DataFrame(lines, columns=[*columns, "mem avail %", "mem PSI", "swap MiB/s", "status"])


def gpu_table(report: Report) -> pd.DataFrame | None:
    """Per node and GPU, what NVML reports (one row per node without NVML, saying why)."""
    rows = (report.sections.get("health") or {}).get("gpus")
    if not rows:
        return None
    if all(r.get("gpu") is None for r in rows):
        reasons = sorted({r["name"] for r in rows})
        return pd.DataFrame([[", ".join(reasons)]], columns=["GPUs: not available"])
    columns = ["node", "gpu", "name", "temp_c", "power_w", "sm_clock_mhz", "throttle"]
    columns += ["ecc_uncorrected", "remapped_rows", "pcie", "nvlink"]
    if any("job" in r for r in rows):  # some GPUs are not the job's: they are shown, not judged
        rows = [{**r, "job": _job_cell(r.get("job"))} for r in rows]
        columns.insert(2, "job")
    if any("compute_mode" in r for r in rows):  # a GPU not in DEFAULT mode (the sweeps need it)
        columns.append("compute_mode")
    frame = pd.DataFrame(rows).reindex(columns=columns)
    return frame.astype(object).where(frame.notna(), "-")


def _job_cell(job: bool | None) -> str | None:
    return None if job is None else "yes" if job else "no (not judged)"


@view("stragglers", order=60)
def draw_stragglers(report: Report) -> list[Table]:
    return [table for table in (rank_table(report), node_pair_table(report)) if table is not None]


@view("health", order=70)
def draw_health(report: Report) -> list[Table]:
    return [
        capped("Hosts (CPU outside the job over a 1 s window, memory, swap)", host_table(report)),
        capped("GPUs (NVML)", gpu_table(report)),
    ]
