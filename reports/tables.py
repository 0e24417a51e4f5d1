"""The tables every human-readable sink shows, shaped once (pandas) and rendered per format.

Per probe: nccl-tests' columns and order (size, count, type, redop, root, then time, algbw,
busbw, #wrong out-of-place and in-place), plus the slowest rank and its time. A column group
that torch cannot measure for a collective (e.g. out-of-place all_reduce) shows "n/a".
"""

from __future__ import annotations

import pandas as pd

from nccldoctor.bandwidth import BUS_FACTORS
from nccldoctor.findings import Finding, Severity
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


def busbw_footer(results: list[Row], probe: str) -> str:
    """'Avg bus bandwidth: 1.234 GB/s', saying why it is 0 when one rank measured it: a reader
    would otherwise take 0.000 for a broken link."""
    text = f"Avg bus bandwidth: {average_busbw(results, probe):.3f} GB/s"
    worlds = {r.world_size for r in results if r.probe == probe}
    if worlds == {1} and probe in BUS_FACTORS and BUS_FACTORS[probe](1) == 0:
        text += " (busbw is 0 by definition with one rank: no data crosses a link)"
    return text


def where(finding: Finding, hostnames: dict[int, str] | None = None) -> str:
    """'node 1 (gpu-17) / ranks 2,3' -- the location column of the findings table."""
    parts = []
    if finding.nodes:
        named = [f"{n} ({hostnames[n]})" if hostnames and n in hostnames else str(n) for n in finding.nodes]
        parts.append(("node " if len(finding.nodes) == 1 else "nodes ") + ", ".join(named))
    if finding.ranks:
        parts.append(("rank " if len(finding.ranks) == 1 else "ranks ") + ",".join(map(str, finding.ranks)))
    return " / ".join(parts) or "job"


def flagged(findings: list[Finding], field: str) -> dict[int, Severity]:
    """Node (field "nodes") or rank ("ranks") -> the worst severity of the warn and fail findings
    naming it: what the HTML page tints."""
    worst: dict[int, Severity] = {}
    for finding in findings:
        if finding.severity is Severity.INFO:
            continue
        for key in getattr(finding, field):
            if worst.get(key) is not Severity.FAIL:
                worst[key] = finding.severity
    return worst


def hostnames(report: Report) -> dict[int, str]:
    """node rank -> hostname, when hostnames tell nodes apart (emulated nodes may share one)."""
    names = {
        n["node_rank"]: n["hostname"] for n in report.job.get("nodes", []) if n.get("node_rank") is not None
    }
    return names if len(set(names.values())) == len(names) > 1 else {}


def number(value: float | None, fmt: str) -> str:
    """A table cell for a number that may be missing ('-')."""
    return "-" if value is None else format(value, fmt)


NOISE = "measurement noise"


def above_100(percent_value: float, why: str = NOISE) -> str:
    """' (above 100%: measurement noise)' for a share that rounds above 100%, else ''. A measured
    share cannot really pass 100%, so a cell that does says why instead of leaving the reader to
    wonder."""
    return f" (above 100%: {why})" if round(percent_value) > 100 else ""


def percent(fraction: float | None, why: str = NOISE) -> str:
    """0.54 -> '54%', 1.54 -> '154% (above 100%: measurement noise)', None -> '-'."""
    return "-" if fraction is None else f"{fraction:.0%}{above_100(fraction * 100, why)}"


FINDINGS_SHOWN = 20  # findings listed one by one; beyond, the rest are counted per code
PER_CODE_SHOWN = 3  # one by one per code, so one noisy code cannot hide the others
_SEVERITY_ORDER = {"fail": 0, "warn": 1, "info": 2}


def findings_digest(findings: list[Finding]) -> tuple[list[Finding], pd.DataFrame | None]:
    """The findings to list one by one (worst severity first, a few per code) and, when there
    are more than FINDINGS_SHOWN, a table per code of what was left out: severity, code,
    count, where (the first hosts, then "... and K more (see report.json)")."""
    if len(findings) <= FINDINGS_SHOWN:
        return findings, None
    ordered = sorted(findings, key=lambda f: _SEVERITY_ORDER.get(f.severity.value, 3))
    shown: list[Finding] = []
    per_code: dict[str, int] = {}
    for finding in ordered:
        if len(shown) < FINDINGS_SHOWN and per_code.get(finding.code, 0) < PER_CODE_SHOWN:
            shown.append(finding)
            per_code[finding.code] = per_code.get(finding.code, 0) + 1
    left = [f for f in ordered if not any(f is s for s in shown)]
    return shown, _by_code(left)


def _by_code(findings: list[Finding]) -> pd.DataFrame:
    groups: dict[str, list[Finding]] = {}
    for finding in findings:
        groups.setdefault(finding.code, []).append(finding)
    rows = []
    for code, group in groups.items():
        nodes = sorted({n for f in group for n in f.nodes})
        listed = ", ".join(map(str, nodes[:8])) + (f" … and {len(nodes) - 8} more" if len(nodes) > 8 else "")
        rows.append([group[0].severity.value, code, len(group), f"nodes {listed}" if nodes else "job"])
    return pd.DataFrame(rows, columns=["severity", "code", "more findings", "where"])


def digest_title(shown: int, total: int) -> str:
    if shown == total:
        return "Findings"
    more = total - shown
    return f"Findings ({shown} of {total}, worst first; … and {more} more by code below, see report.json)"
