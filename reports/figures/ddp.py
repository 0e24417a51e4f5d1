"""The reference DDP benchmark: where a training step's time goes (compute, communication the
backward pass did not hide, the all-reduce the probes predict) and the throughput it reached."""

from __future__ import annotations

from nccldoctor.report import Report
from nccldoctor.reports.figures import Plot, figure, plot
from nccldoctor.reports.figures.canvas import MUTED, OK, SERIES, WARN, headroom, new_figure
from nccldoctor.units import format_bytes

STEP_BARS_MAX = 64  # ranks shown one bar each in the step panel; beyond, the slowest


@figure("ddp", order=0)
def draw_ddp(report: Report) -> list[Plot]:
    section = report.sections["ddp"]
    comm = section.get("communication") or {}
    if comm.get("no_sync_fb_ms") is None or comm.get("exposed_ms") is None:
        return []
    fig, (breakdown, per_rank) = new_figure(
        3.2, left=1.0, top=0.75, ncols=2, width_ratios=[3, 2], gridspec_kw={"wspace": 0.3}
    )
    _breakdown(breakdown, comm)
    _per_rank(per_rank, section.get("ranks") or [])
    throughput = section.get("throughput") or {}
    model = section.get("model") or {}
    fig.suptitle(
        f"DDP: {throughput.get('tokens_per_s', 0):,.0f} tokens/s, "
        f"{throughput.get('samples_per_s', 0):,.1f} samples/s",
        fontweight="bold",
    )
    caption = (
        f"The {model.get('preset', '?')} model: {model.get('parameters', 0):,} parameters, "
        f"{format_bytes(comm.get('gradient_bytes') or 0)} of gradients per step. "
        "Left: forward and backward with gradient sync against without it (no_sync); the difference "
        "is communication the backward pass did not hide. The all-reduce of the gradients as the "
        "probes' busbw predicts it, and as DDP spent it where the backend reports it. Right: each "
        "rank's median step (p50) and its 95th percentile."
    )
    return [plot("ddp", "DDP step breakdown", fig, caption)]


def _breakdown(ax, comm: dict) -> None:
    compute, exposed = comm["no_sync_fb_ms"], comm["exposed_ms"]
    bars = [("step", compute, exposed)]
    if comm.get("predicted_allreduce_ms") is not None:
        bars.append(("all-reduce\npredicted", None, comm["predicted_allreduce_ms"]))
    if comm.get("ddp_allreduce_ms") is not None:
        bars.append(("all-reduce\nin DDP", None, comm["ddp_allreduce_ms"]))
    for i, (_, first, second) in enumerate(bars):
        if first is not None:
            ax.barh(i, first, color=OK, height=0.6, label="compute (no_sync)")
            ax.barh(i, second, left=first, color=WARN, height=0.6, label="exposed communication")
            ax.text(first + second, i, f" {first + second:.1f} ms", va="center", fontsize=8)
        else:
            ax.barh(i, second, color=SERIES[4], height=0.6)
            ax.text(second, i, f" {second:.1f} ms", va="center", fontsize=8)
    ax.set_yticks(range(len(bars)), [name for name, _, _ in bars])
    ax.set_xlabel("time per step (ms)")
    ax.set_xlim(0, max((first or 0.0) + second for _, first, second in bars) * 1.3)
    share = comm.get("share_of_step")
    ax.set_title(f"One step: {share:.0%} of it exposed communication" if share is not None else "One step")
    ax.legend(loc="upper right")
    ax.set_ylim(len(bars) - 0.4, -1.1)  # room above the first bar for the legend
    ax.grid(axis="y", visible=False)


def _per_rank(ax, ranks: list[dict]) -> None:
    ranks = sorted((r for r in ranks if r.get("step_p50_ms") is not None), key=lambda r: -r["step_p50_ms"])
    shown = ranks[:STEP_BARS_MAX]
    p50 = [r["step_p50_ms"] for r in shown]
    p95 = [max(0.0, (r.get("step_p95_ms") or r["step_p50_ms"]) - r["step_p50_ms"]) for r in shown]
    ax.bar(range(len(shown)), p50, color=OK, width=0.8, label="p50")
    ax.bar(range(len(shown)), p95, bottom=p50, color=MUTED, width=0.8, label="to p95")
    if len(shown) <= 16:
        ax.set_xticks(range(len(shown)), [str(r["rank"]) for r in shown])
    else:
        ax.set_xticks([])
    more = f", slowest {len(shown)} of {len(ranks):,}" if len(ranks) > len(shown) else ""
    ax.set_xlabel(f"rank{more}")
    ax.set_ylabel("step time (ms)")
    ax.set_title("Step time per rank, slowest first")
    headroom(ax)
    ax.legend(loc="upper right", ncols=2)
    ax.grid(axis="x", visible=False)
