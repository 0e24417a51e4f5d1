"""The settings sweep's section: busbw per setting and size, the verdicts, the runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.reports.sections.nccl import nccl_choice
from nccldoctor.units import format_size


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
        (f"Settings sweep: busbw GB/s, median (min-max) of {rounds} rounds", settings_busbw_table(report)),
        (f"Settings sweep against the defaults: {sweep['advice']}", settings_verdict_table(report)),
        ("Settings sweep runs (fresh processes each; times of rank 0's child)", settings_runs_table(report)),
    ]


@view("settings_sweep", order=40)
def draw(report: Report) -> list[Table]:
    return settings_tables(report)
