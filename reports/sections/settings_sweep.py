"""The settings sweep's section: busbw per setting and size, the verdicts, the runs."""

from __future__ import annotations

from typing import Any

import pandas as pd

from nccldoctor.bandwidth import BUS_FACTORS, LATENCY_BOUND_BELOW
from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.reports.sections.nccl import nccl_choice
from nccldoctor.units import format_size, three_digits


def settings_busbw_table(report: Report) -> pd.DataFrame | None:
    """Probe and size x setting: the median over the rounds, with its range; busbw in GB/s, or
    the time in µs below LATENCY_BOUND_BELOW, where busbw is a tiny number that says little."""
    sweep = report.sections.get("settings_sweep")
    if not sweep or not sweep["table"]:
        return None
    frame = pd.DataFrame(sweep["table"])
    world = report.job.get("world_size")
    frame["cell"] = [_cell(r, world) for r in frame.itertuples(index=False)]
    order = [s["name"] for s in sweep["settings"]]
    table = frame.pivot(index=["probe", "size_bytes"], columns="setting", values="cell")
    table = table.reindex(columns=[name for name in order if name in table.columns]).fillna("-")
    table = table.reset_index()
    table["size_bytes"] = [format_size(int(size)) for size in table["size_bytes"]]
    return table.rename(columns={"size_bytes": "size"}).rename_axis(columns=None)


def _cell(r: Any, world: int | None) -> str:  # r: one row of the section's table
    """'1.23 (1.1 to 1.3)' GB/s, or for a latency-bound size '12.3 µs (11.9 to 13)'."""
    if r.size_bytes >= LATENCY_BOUND_BELOW:
        return f"{three_digits(r.busbw_median)} ({three_digits(r.busbw_min)} to {three_digits(r.busbw_max)})"
    median = f"{three_digits(r.time_us_median)} µs"
    # The table keeps only busbw's range; within one size and probe time = size x factor / busbw.
    factor = BUS_FACTORS[r.probe](world) if world and r.probe in BUS_FACTORS else 0.0
    if not (factor and r.busbw_min > 0 and r.busbw_max > 0):
        return median  # one rank: busbw is 0, its range tells no time
    fastest, slowest = (r.size_bytes * factor / busbw / 1e3 for busbw in (r.busbw_max, r.busbw_min))
    return f"{median} ({three_digits(fastest)} to {three_digits(slowest)})"


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
    columns = ["sizes", "best setting", "gain (median)", "worst round", "noise", "verdict"]
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
                nccl_choice(setting.get("nccl")),
                status,
            ]
        )
    columns = ["setting", "rounds", "start-up (s)", "import + init (s)", "measure (s)", "NCCL chose"]
    return pd.DataFrame(lines, columns=[*columns, "status"])


def settings_tables(report: Report) -> list[tuple[str, pd.DataFrame | None]]:
    sweep = report.sections.get("settings_sweep")
    if not sweep:
        return []
    rounds = sweep["repeats"]
    return [
        (
            f"Settings sweep, median (min to max) of {rounds} rounds: busbw in GB/s, or the time "
            f"in µs below {format_size(LATENCY_BOUND_BELOW)} (latency-bound sizes)",
            settings_busbw_table(report),
        ),
        (f"Settings sweep against the defaults: {sweep['advice']}", settings_verdict_table(report)),
        ("Settings sweep runs (fresh processes each; times of rank 0's child)", settings_runs_table(report)),
    ]


@view("settings_sweep", order=40)
def draw(report: Report) -> list[Table]:
    return settings_tables(report)
