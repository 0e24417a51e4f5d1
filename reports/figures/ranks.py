"""Per-rank straggler scores and each rank's step split into compute and waiting for the others:
which rank is slow, by how much, and whether it is slow at computing or kept waiting."""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from nccldoctor.findings import Severity
from nccldoctor.report import Report
from nccldoctor.reports.figures import Plot, figure, plot
from nccldoctor.reports.figures.canvas import FAIL, MUTED, OK, WARN, headroom, new_figure, width_for
from nccldoctor.reports.tables import flagged

LABELLED_MAX = 32  # ranks drawn one bar each; beyond, the slowest few and a histogram of all
SLOWEST_SHOWN = 24  # bars beside the histogram


def _colors(ranks: list[dict], named: dict[int, Severity]) -> list[str]:
    by_severity = {Severity.FAIL: FAIL, Severity.WARN: WARN}
    return [by_severity.get(named.get(r["rank"]), OK) for r in ranks]


def _rank_axis(ax: Axes, ranks: list[dict]) -> None:
    """x: the ranks in the plotted order, each labelled 'rank/node' when they fit."""
    if len(ranks) <= LABELLED_MAX:
        ax.set_xticks(range(len(ranks)), [f"{r['rank']}\nn{r['node']}" for r in ranks], fontsize=7)
        ax.set_xlabel("rank (n: node)")
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(ranks):,} ranks, in the order above")
    ax.set_xlim(-0.7, len(ranks) - 0.3)
    ax.grid(axis="x", visible=False)


@figure("stragglers", order=0)
def draw_scores(report: Report) -> list[Plot]:
    section = report.sections["stragglers"]
    ranks = sorted(section.get("ranks") or [], key=lambda r: r["score"])
    if not ranks:
        return []
    named = flagged(report.findings, "ranks")
    thresholds = section.get("thresholds") or {}
    # A large job: the slowest ranks one by one, and all of them in a histogram.
    shown = ranks if len(ranks) <= LABELLED_MAX else ranks[:SLOWEST_SHOWN]
    if len(shown) == len(ranks):
        fig, bars = new_figure(3.0, width=width_for(len(ranks)), bottom=0.75)
    else:
        fig, (bars, spread) = new_figure(3.0, bottom=0.75, ncols=2, width_ratios=[3, 2])
        _score_histogram(spread, ranks, thresholds)
    scores = [r["score"] for r in shown]
    bars.bar(range(len(shown)), scores, color=_colors(shown, named), width=0.8)
    for name, color in (("warn", WARN), ("fail", FAIL)):
        if thresholds.get(name) is not None:
            label = f"{name} below {thresholds[name]:g}"
            bars.axhline(thresholds[name], color=color, linestyle="--", linewidth=1, label=label)
    bars.axhline(1.0, color=MUTED, linewidth=0.8)
    bars.set_ylabel("score (median rank's time / rank's)")
    bars.set_ylim(0, max(1.45, max(scores) * 1.25))
    _rank_axis(bars, shown)
    which = "" if len(shown) == len(ranks) else f" (the slowest {len(shown)} of {len(ranks):,})"
    bars.set_title(f"Straggler score per rank, slowest first{which}\n(1 = the median rank; lower is slower)")
    bars.legend(loc="upper right", ncols=2)
    caption = (
        "Each rank's score on the same compute and copy work (report.json stragglers.ranks). "
        "Red or amber: a rank a finding names; dashed: the thresholds the run judged with."
    )
    plots = [plot("scores", "Straggler scores", fig, caption)]
    split = _step_split(ranks, named)
    return [*plots, split] if split else plots


def _score_histogram(ax: Axes, ranks: list[dict], thresholds: dict) -> None:
    """How many ranks score what: a healthy job is one narrow peak near 1."""
    ax.hist([r["score"] for r in ranks], bins=40, color=OK)
    for name, color in (("warn", WARN), ("fail", FAIL)):
        if thresholds.get(name) is not None:
            ax.axvline(thresholds[name], color=color, linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("score")
    ax.set_ylabel("ranks")
    ax.set_title(f"All {len(ranks):,} ranks' scores")


def _step_split(ranks: list[dict], named: dict[int, Severity]) -> Plot | None:
    """One synchronised step per rank: its own compute, then the wait for the slowest."""
    if not any(r.get("step_compute_ms") is not None for r in ranks):
        return None
    shown = ranks[:LABELLED_MAX]  # a large job: the slowest ranks, where the split tells something
    fig, ax = new_figure(2.8, width=width_for(len(shown)), bottom=0.75)
    compute = [r["step_compute_ms"] or 0.0 for r in shown]
    wait = [r["step_wait_ms"] or 0.0 for r in shown]
    at = range(len(shown))
    ax.bar(at, compute, color=_colors(shown, named), width=0.8)
    ax.bar(at, wait, bottom=compute, color=MUTED, width=0.8)
    # Legend entries of their own: the first bar may be a flagged rank's red.
    legend = [Patch(color=OK, label="compute"), Patch(color=MUTED, label="waiting for the others")]
    ax.set_ylabel("time per step (ms)")
    _rank_axis(ax, shown)
    which = "same order" if len(shown) == len(ranks) else f"the slowest {len(shown)} of {len(ranks):,}"
    ax.set_title(f"Step split per rank ({which}):\ncompute, then waiting at the all-reduce")
    headroom(ax)
    ax.legend(handles=legend, loc="upper right", ncols=2)
    caption = (
        "A slow rank computes longer and waits least; the others wait for it. "
        "From stragglers.ranks step_compute_ms and step_wait_ms."
    )
    return plot("step-split", "Step compute and wait", fig, caption)
