"""The tables every human-readable sink shows, shaped once (pandas) and rendered per format.

Per probe: nccl-tests' columns and order (size, count, type, redop, root, then time, algbw,
busbw, #wrong out-of-place and in-place), plus the slowest rank and its time. A column group
that torch cannot measure for a collective (e.g. out-of-place all_reduce) shows "n/a".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from nccldoctor.findings import Finding
from nccldoctor.report import Report
from nccldoctor.rows import Row, rows_frame
from nccldoctor.units import format_size

MODE_COLUMNS = ("time (us)", "algbw (GB/s)", "busbw (GB/s)", "#wrong")
PROBE_COLUMNS = [
    "size (B)",
    "count (elements)",
    "type",
    "redop",
    "root",
    *(f"out-of-place {c}" for c in MODE_COLUMNS),
    *(f"in-place {c}" for c in MODE_COLUMNS),
    "slowest rank",
    "slowest time (us)",
]
NOT_MEASURED = "n/a"


def short_header(column: str) -> str:
    """'out-of-place time (us)' -> 'time\\n(us)': nccl-tests' two-line header, for narrow screens."""
    name = column.removeprefix("out-of-place ").removeprefix("in-place ")
    return name.replace(" (", "\n(")


def _mode_cells(row: pd.Series | None) -> list[str]:
    if row is None:
        return [NOT_MEASURED] * len(MODE_COLUMNS)
    wrong = "N/A" if pd.isna(row["wrong"]) else str(int(row["wrong"]))  # N/A: not checked (-c 0)
    return [f"{row['time_us']:.1f}", f"{row['algbw_gbps']:.3f}", f"{row['busbw_gbps']:.3f}", wrong]


def probe_tables(results: list[Row]) -> dict[str, pd.DataFrame]:
    """One display table per probe, keyed by probe name, in the order the probes ran."""
    if not results:
        return {}
    frame = rows_frame(results)
    tables = {}
    for probe, rows in frame.groupby("probe", sort=False):
        lines = []
        for size, at_size in rows.groupby("size_bytes", sort=True):
            by_mode = {bool(r["inplace"]): r for _, r in at_size.iterrows()}
            first = at_size.iloc[0]
            slowest = at_size.loc[at_size["max_time_us"].idxmax()]
            lines.append(
                [
                    format_size(int(size)),
                    int(first["count"]),
                    first["dtype"],
                    first["op"],
                    int(first["root"]),
                    *_mode_cells(by_mode.get(False)),
                    *_mode_cells(by_mode.get(True)),
                    int(slowest["slowest_rank"]),
                    f"{slowest['max_time_us']:.1f}",
                ]
            )
        tables[str(probe)] = pd.DataFrame(lines, columns=PROBE_COLUMNS)
    return tables


def average_busbw(results: list[Row], probe: str) -> float:
    """nccl-tests' footer number: mean busbw over every row of the probe."""
    values = [r.busbw_gbps for r in results if r.probe == probe]
    return sum(values) / len(values) if values else 0.0


def where(finding: Finding, hostnames: dict[int, str] | None = None) -> str:
    """'node 1 (gpu-17) / ranks 2,3' -- the location column of the findings table."""
    parts = []
    if finding.nodes:
        named = [f"{n} ({hostnames[n]})" if hostnames and n in hostnames else str(n) for n in finding.nodes]
        parts.append(("node " if len(finding.nodes) == 1 else "nodes ") + ", ".join(named))
    if finding.ranks:
        parts.append(("rank " if len(finding.ranks) == 1 else "ranks ") + ",".join(map(str, finding.ranks)))
    return " / ".join(parts) or "job"


def hostnames(report: Report) -> dict[int, str]:
    """node rank -> hostname, when hostnames tell nodes apart (emulated nodes may share one)."""
    names = {
        n["node_rank"]: n["hostname"] for n in report.job.get("nodes", []) if n.get("node_rank") is not None
    }
    return names if len(set(names.values())) == len(names) > 1 else {}


def network_table(report: Report) -> pd.DataFrame | None:
    """Per node: the interface the backend will use, why, and its address and MTU."""
    network = report.sections.get("network")
    if not network:
        return None
    lines = []
    for node in network["nodes"]:
        by_name = {i["name"]: i for i in node["interfaces"]}
        chosen = [by_name[n] for n in node["chosen"] if n in by_name]
        lines.append(
            [
                node["node_rank"],
                node["hostname"],
                ",".join(node["chosen"]) or "none",
                " ".join(a for i in chosen for a in i["addresses"]) or "-",
                chosen[0]["mtu"] if chosen else "-",
                node["rule"],
                _ib_cell(node.get("ib_ports", [])),
            ]
        )
    frame = pd.DataFrame(
        lines, columns=["node", "hostname", "interface", "addresses", "mtu", "rule", "IB/RoCE"]
    )
    if (frame["IB/RoCE"] == "-").all():
        frame = frame.drop(columns="IB/RoCE")  # most test beds and clouds: no column of dashes
    return frame


def _ib_cell(ports: list[dict]) -> str:
    """'mlx5_0:1 ACTIVE 200G IB, mlx5_1:1 DOWN' -- what NCCL's NET/IB could use on the node."""
    if not ports:
        return "-"
    cells = []
    for p in ports:
        rate = f" {p['rate_gbps']:g}G" if p["rate_gbps"] else ""
        layer = " RoCE" if p["link_layer"] == "Ethernet" else " IB" if p["link_layer"] == "InfiniBand" else ""
        cells.append(f"{p['device']}:{p['port']} {p['state'] or '?'}{rate}{layer}")
    return ", ".join(cells)


def ports_table(report: Report) -> pd.DataFrame | None:
    """Per (from node, to node): how many sampled ports connected, and how the rest failed."""
    ports = (report.sections.get("network") or {}).get("ports")
    if not ports:
        return None
    lines = []
    for pair in ports["pairs"]:
        listening = ports["listening"].get(str(pair["to_node"]), {})
        failed = {k: v for k, v in pair.items() if k not in ("from_node", "to_node", "route_source", "open")}
        lines.append(
            [
                pair["from_node"],
                pair["to_node"],
                listening.get("address", "?"),
                pair.get("open", 0),
                ", ".join(f"{n} {kind}" for kind, n in failed.items()) or "-",
                pair.get("route_source") or "-",
            ]
        )
    return pd.DataFrame(lines, columns=["from node", "to node", "address", "open", "failed", "route source"])


def nic_sweep_table(report: Report) -> pd.DataFrame | None:
    """Per candidate interface: bandwidth, % of line rate and latency, measured in fresh processes."""
    sweep = report.sections.get("nic_sweep")
    if not sweep:
        return None

    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        [
            r["iface"] + (" (in use)" if r["in_use"] else ""),
            format_size(r["size_bytes"]) if r["size_bytes"] else "-",
            number(r["busbw_gbps"], ".3f"),
            number(r["percent_of_line_rate"], ".0f"),
            f"{r['line_rate_mbps']} Mb/s" if r["line_rate_mbps"] else "unknown",
            number(r["latency_us"], ".1f"),
            r["failed"] or "ok",
        ]
        for r in sweep["results"]
    ]
    columns = ["interface", "size", "busbw (GB/s)", "% of line rate", "line rate", "8 B latency (us)"]
    return pd.DataFrame(lines, columns=[*columns, "status"])


def settings_busbw_table(report: Report) -> pd.DataFrame | None:
    """Probe and size x setting: the median busbw over the rounds, with its range."""
    sweep = report.sections.get("settings_sweep")
    if not sweep or not sweep["table"]:
        return None
    frame = pd.DataFrame(sweep["table"])
    frame["cell"] = [
        f"{_sig(r.busbw_median)} ({_sig(r.busbw_min)} to {_sig(r.busbw_max)})"
        for r in frame.itertuples(index=False)
    ]
    order = [s["name"] for s in sweep["settings"]]
    table = frame.pivot(index=["probe", "size_bytes"], columns="setting", values="cell")
    table = table.reindex(columns=[name for name in order if name in table.columns]).fillna("-")
    table = table.reset_index()
    table["size_bytes"] = [format_size(int(size)) for size in table["size_bytes"]]
    return table.rename(columns={"size_bytes": "size"}).rename_axis(columns=None)


def _sig(value: float) -> str:
    """Three significant digits without an exponent: 0.0000148, 12.3, 0.587."""
    return np.format_float_positional(value, precision=3, unique=False, fractional=False, trim="-")


def settings_verdict_table(report: Report) -> pd.DataFrame | None:
    """Per scope (all sizes, each band): the best setting against the defaults, and whether it counts."""
    sweep = report.sections.get("settings_sweep")
    if not sweep or not sweep["verdicts"]:
        return None
    lines = []
    for scope, verdict in sweep["verdicts"].items():
        ranked = sweep["comparisons"][scope]
        # When the defaults win, show the best of the others: how far behind, and how noisy.
        shown = next((c for c in ranked if c["setting"] == verdict["best"]), ranked[0] if ranked else None)
        numbers = (
            [f"{shown['gain']:+.1%}", f"{shown['worst_round']:+.1%}", f"{shown['noise']:.1%}"]
            if shown
            else ["-", "-", "-"]
        )
        contender = "" if not shown or shown["setting"] == verdict["best"] else f" (next: {shown['setting']})"
        lines.append([scope, verdict["best"] + contender, *numbers, verdict["verdict"]])
    columns = ["sizes", "best setting", "gain (median)", "worst round", "defaults' noise", "verdict"]
    return pd.DataFrame(lines, columns=columns)


def settings_runs_table(report: Report) -> pd.DataFrame | None:
    """Per setting: how its runs went, and what a run costs besides measuring (start-up, init)."""
    sweep = report.sections.get("settings_sweep")
    if not sweep:
        return None
    lines = []
    for setting in sweep["settings"]:
        children = [run["child"] for run in setting["runs"] if run["child"]]

        def mean(key: str, children: list = children) -> str:
            values = [c[key] for c in children if c.get(key) is not None]
            return f"{sum(values) / len(values):.2f}" if values else "-"

        status = setting["error"] or ("ok" if setting["runs"] else "not run")
        if setting.get("same_as_defaults"):
            status += "; the same values as the defaults (an A/A check of the noise)"
        if setting.get("ignored"):
            status += "; NCCL ignored: " + "; ".join(setting["ignored"])
        lines.append(
            [
                setting["name"],
                len(setting["runs"]),
                mean("startup_s"),
                mean("init_s"),
                mean("measure_s"),
                _nccl_choice(setting.get("nccl")),
                status,
            ]
        )
    columns = ["setting", "rounds", "start-up (s)", "import + init (s)", "measure (s)", "NCCL chose"]
    return pd.DataFrame(lines, columns=[*columns, "status"])


def _nccl_choice(log: dict | None) -> str:
    """'AllReduce 8B-64K Ring/LL, 1M-8M Ring/Simple' from the TUNING lines (GPU runs)."""
    if not log or not log.get("tuning"):
        return "-"
    spans: dict[tuple[str, str], list[int]] = {}
    for entry in log["tuning"]:
        choice = f"{entry['algo']}/{entry['proto']}"
        spans.setdefault((entry["collective"], choice), []).append(entry["bytes"])
    return ", ".join(
        f"{coll} {format_size(min(sizes))}-{format_size(max(sizes))} {choice}"
        for (coll, choice), sizes in spans.items()
    )


def nccl_table(report: Report) -> pd.DataFrame | None:
    """Per node, what NCCL's own INFO log says it used."""
    nccl = report.sections.get("nccl")
    if not nccl or not nccl.get("nodes"):
        return None
    lines = [
        [
            node,
            log.get("version") or "?",
            ",".join(log.get("transports") or []) or "?",
            ",".join(log.get("bootstrap_ifaces") or log.get("socket_ifaces") or []) or "-",
            ",".join(log.get("ib_devices") or []) or "-",
            log.get("plugin") or "-",
        ]
        for node, log in sorted(nccl["nodes"].items(), key=lambda item: int(item[0]))
    ]
    columns = ["node", "NCCL", "network", "socket interface", "IB devices", "plugin"]
    return pd.DataFrame(lines, columns=columns)


ROWS_SHOWN = 10  # per-rank rows and slowest pairs shown; report.json has them all
MATRIX_NODES = 12  # node-pair matrix up to this many nodes; beyond, the slowest pairs


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


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
            _num(r["tflops"], ".3f"),
            _num(r["copy_gbps"], ".1f"),
            _num(r["h2d_gbps"], ".1f"),
            _num(r["d2h_gbps"], ".1f"),
            f"{r['step_compute_ms']:.2f}",
            f"{r['step_wait_ms']:.2f}",
            _num(r["ring_in_gbps"], ".3f"),
            *([_num(ddp.get(r["rank"], {}).get("compute_p50_ms"), ".1f")] if ddp else []),
        ]
        for r in rows[:ROWS_SHOWN]
    ]
    columns = ["rank", "node", "score", "TFLOP/s", "copy GB/s", "H2D GB/s", "D2H GB/s"]
    columns += ["step compute (ms)", "step wait (ms)", "ring in (GB/s)"]
    columns += ["DDP compute p50 (ms)"] if ddp else []
    shown = f"slowest {ROWS_SHOWN} of {len(rows)}" if len(rows) > ROWS_SHOWN else f"{len(rows)}"
    return f"Ranks ({shown}, slowest first; score = median rank's time / the rank's)", pd.DataFrame(
        lines, columns=columns
    )


def node_pair_table(report: Report) -> tuple[str, pd.DataFrame] | None:
    """GB/s between node leaders: the matrix (row sends, column receives), or the slowest pairs."""
    pairs = (report.sections.get("stragglers") or {}).get("node_pairs") or {}
    gbps, nodes = pairs.get("gbps"), pairs.get("nodes", [])
    if not gbps:
        return None
    size = format_size(pairs["size_bytes"])
    if len(nodes) <= MATRIX_NODES:
        lines = [[f"node {a}", *(_num(v, ".3f") for v in row)] for a, row in zip(nodes, gbps, strict=True)]
        frame = pd.DataFrame(lines, columns=["from \\ to", *(f"node {b}" for b in nodes)])
        return f"Node pairs (GB/s, {size} each way, row sends to column)", frame
    measured = [
        (v, a, b) for i, a in enumerate(nodes) for j, b in enumerate(nodes) if (v := gbps[i][j]) is not None
    ]
    lines = [[f"node {a} -> node {b}", f"{v:.3f}"] for v, a, b in sorted(measured)[:ROWS_SHOWN]]
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
            _num(r["psi_some_avg10"], ".1f"),
            f"{r['swap_mib_per_s']:g}",
            r["status"],
        ]
        for r in rows
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
    frame = pd.DataFrame(rows).reindex(columns=columns)
    return frame.astype(object).where(frame.notna(), "-")


def settings_tables(report: Report) -> list[tuple[str, pd.DataFrame | None]]:
    sweep = report.sections.get("settings_sweep")
    if not sweep:
        return []
    rounds = sweep["repeats"]
    return [
        (f"Settings sweep: busbw GB/s, median (min-max) of {rounds} rounds", settings_busbw_table(report)),
        (f"Settings sweep against the defaults: {sweep['advice']}", settings_verdict_table(report)),
        ("Settings sweep runs (fresh processes each; times of rank 0's child)", settings_runs_table(report)),
    ]


def ddp_table(report: Report) -> pd.DataFrame | None:
    """The DDP benchmark in one column: throughput, batch, communication, correctness."""
    ddp = report.sections.get("ddp")
    if not ddp:
        return None
    model, batch, speed, comm, ok = (
        ddp[k] for k in ("model", "batch", "throughput", "communication", "correctness")
    )
    lines = [
        ("model", f"{model['preset']}: {model['parameters'] / 1e6:.1f}M parameters, {model['precision']}"),
        (
            "global batch",
            f"{batch['global']} = {batch['per_rank']} x {batch['ranks']} ranks x {batch['accumulation']}",
        ),
        ("throughput", f"{speed['samples_per_s']:.1f} samples/s, {speed['tokens_per_s']:.0f} tokens/s"),
        ("step p50 / p95", f"{speed['step_p50_ms']:.1f} / {speed['step_p95_ms']:.1f} ms"),
        ("gradients per step", f"{comm['gradient_bytes'] / 1e6:.2f} MB in {len(comm['buckets'])} bucket(s)"),
        ("fwd+bwd synced / no_sync", f"{comm['synced_fb_ms']:.1f} / {comm['no_sync_fb_ms']:.1f} ms"),
        (
            "exposed communication",
            f"{comm['exposed_ms']:.1f} ms, {_percent(comm['share_of_step'])} of the step",
        ),
        ("all-reduce predicted at all_reduce busbw", _ms(comm["predicted_allreduce_ms"]) + _sources(comm)),
        ("all-reduce DDP spent (Gloo)", _ms(comm["ddp_allreduce_ms"])),
        ("DDP / all_reduce bandwidth", _percent(comm["fraction_of_probe_bandwidth"])),
        ("hidden by overlap", _percent(comm["hidden_by_overlap"])),
        ("loss first -> last", f"{ok['loss_first']:.3f} -> {ok['loss_last']:.3f}"),
        ("replicas identical", "yes" if ok["checksums_equal"] else f"no: ranks {ok['differing_ranks']}"),
    ]
    if batch.get("lr_hint"):
        lines.append(("learning rate", batch["lr_hint"]))
    return pd.DataFrame(lines, columns=["DDP benchmark", "value"])


def checkpoint_table(report: Report) -> pd.DataFrame | None:
    checkpoint = (report.sections.get("ddp") or {}).get("checkpoint")
    if not checkpoint:
        return None
    lines = [
        [
            r["rank"],
            r["node"],
            f"{r['bytes'] / 1e6:.2f}",
            _num(r["write_mb_s"], ".1f"),
            _num(r["read_mb_s"], ".1f"),
            r["write_error"] or "; ".join(r["missing"] + r["corrupt"]) or "ok",
        ]
        for r in checkpoint["ranks"]
    ]
    return pd.DataFrame(
        lines, columns=["rank", "node", "shard MB", "write MB/s", "read MB/s", "missing or wrong"]
    )


def _sources(comm: dict) -> str:
    """Where the busbw came from: the probes' rows, or all_reduces measured at bucket sizes."""
    sources = sorted({b["source"] for b in comm["buckets"] if b.get("busbw_gbps") is not None})
    return f" (busbw {'; '.join(sources)})" if sources else ""


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def section_tables(report: Report) -> list[tuple[str, pd.DataFrame]]:
    """The tables of the checks that ran besides the probes, titled, in reading order."""
    backend = (report.sections.get("network") or report.sections.get("nic_sweep") or {}).get("backend", "")
    tables = [
        (f"Interfaces ({backend})", network_table(report)),
        ("Ports (sampled ephemeral range and --ports, between nodes)", ports_table(report)),
        ("NCCL, from its own INFO log", nccl_table(report)),
        (f"Per-NIC sweep ({backend}, all_reduce in fresh processes)", nic_sweep_table(report)),
        *settings_tables(report),
        ("DDP reference training benchmark", ddp_table(report)),
        (
            f"Checkpoint round trip ({(report.sections.get('ddp') or {}).get('checkpoint', {}).get('dir')})",
            checkpoint_table(report),
        ),
        rank_table(report),
        node_pair_table(report),
        ("Hosts (CPU outside the job over a 1 s window, memory, swap)", host_table(report)),
        ("GPUs (NVML)", gpu_table(report)),
    ]
    titled = [item for item in tables if item is not None]
    return [(title, frame) for title, frame in titled if frame is not None]
