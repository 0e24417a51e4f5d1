"""This run against a known-good one (--baseline, `nccldoctor compare`): comparable or not, the
deltas (nccldoctor.gate.deltas), and the `regression` findings.

What is compared: per probe its busbw and latency (judged) and each size's busbw and time
(details), main-run rows only; per node the compute score; per link (node pairs, ring) the
GB/s; DDP tokens/s. Runs that differ in shape, backend, device, dtype or versions, or share
nothing measured, are not compared at all: one `baseline_not_comparable` finding says why.
Improvements beyond the noise show as `better` in the deltas, never as findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.gate.bar import Bar, Delta
from nccldoctor.gate.deltas import ddp_deltas, link_deltas, probe_deltas, score_deltas, section
from nccldoctor.report import Report, main_rows
from nccldoctor.units import format_size

JOB_KEYS = {"world_size": "ranks", "nnodes": "nodes", "backend": "backend", "device": "device"}


@dataclass
class Comparison:
    comparable: bool
    reasons: list[str]  # why the runs are not comparable (empty when they are)
    deltas: list[Delta]
    bar: Bar

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if d.judged and d.status in ("warn", "fail")]

    def section(self, path: str) -> dict[str, Any]:
        """report.json's `baseline` section."""
        return {
            "path": path,
            "comparable": self.comparable,
            "reasons": self.reasons,
            "thresholds": {"fail_pct": self.bar.fail_pct, "noise_factor": self.bar.noise_factor},
            "deltas": [d.to_dict() for d in self.deltas],
        }


def compare(old: Report, new: Report, bar: Bar) -> Comparison:
    """`new` against the baseline `old`; nothing is compared when they are not comparable."""
    reasons = not_comparable(old, new)
    if reasons:
        return Comparison(False, reasons, [], bar)
    deltas = [
        *probe_deltas(old, new, bar),
        *score_deltas(old, new, bar),
        *link_deltas(old, new, bar),
        *ddp_deltas(old, new, bar),
    ]
    return Comparison(True, [], deltas, bar)


def not_comparable(old: Report, new: Report) -> list[str]:
    """Why the two runs cannot be compared, in words (empty: they can)."""
    reasons = [] if old.complete else ["the baseline run did not finish (a partial report)"]
    for key, what in JOB_KEYS.items():
        if old.job.get(key) != new.job.get(key):
            reasons.append(f"{what}: {old.job.get(key)} in the baseline, {new.job.get(key)} in this run")
    for name in ("torch", "nccl"):
        was, now = ((r.job.get("versions") or {}).get(name) for r in (old, new))
        if was != now:
            reasons.append(f"{name} version: {was} in the baseline, {now} in this run")
    was, now = (sorted({row.dtype for row in main_rows(r.results)}) for r in (old, new))
    if was and now and was != now:
        reasons.append(f"dtype: {', '.join(was)} in the baseline, {', '.join(now)} in this run")
    if not reasons and not _in_common(old, new):
        measured_in = f"the baseline has {_measured(old)}, this run {_measured(new)}"
        reasons.append(f"nothing measured in both: {measured_in}")
    return reasons


def _in_common(old: Report, new: Report) -> bool:
    keys = [{(row.probe, row.size_bytes) for row in main_rows(r.results)} for r in (old, new)]
    return bool(keys[0] & keys[1]) or any(
        bool(section(old, *path)) and bool(section(new, *path))
        for path in (("stragglers", "ranks"), ("ddp", "throughput"))
    )


def _measured(report: Report) -> str:
    rows = main_rows(report.results)
    if not rows:
        return "no collective rows"
    sizes = sorted({row.size_bytes for row in rows})
    probes = ", ".join(sorted({row.probe for row in rows}))
    return f"{probes} at {format_size(sizes[0])}-{format_size(sizes[-1])}"


# -- findings -------------------------------------------------------------------------------------
def findings(comparison: Comparison, path: str) -> list[Finding]:
    """A `regression` per judged value worse beyond the noise, or one `baseline_not_comparable`."""
    if not comparison.comparable:
        return [
            make_finding(
                "baseline_not_comparable",
                f"not compared with the baseline {path}: " + "; ".join(comparison.reasons),
                evidence={"baseline": path, "reasons": comparison.reasons},
            )
        ]
    return [regression(d, comparison.bar, path) for d in comparison.regressions]


def regression(delta: Delta, bar: Bar, path: str) -> Finding:
    beyond = f"beyond its noise ({1 + delta.noise:.2f}x)"
    if delta.status == "fail":
        beyond += f" and worse than {bar.fail_pct:g}%"
    return make_finding(
        "regression",
        f"{describe(delta)}{', ' + delta.note if delta.note else ''}: {beyond}",
        severity=Severity.FAIL if delta.status == "fail" else Severity.WARN,
        nodes=delta.nodes,
        ranks=delta.ranks,
        evidence={
            "baseline": path,
            "metric": delta.metric,
            "subject": delta.subject,
            "probe": delta.probe,
            "size_bytes": delta.size_bytes,
            "sizes": delta.sizes,
            "baseline_value": delta.old,
            "value": delta.new,
            "unit": delta.unit,
            "worse_pct": round(delta.worse * 100, 1),
            "slowdown": delta.slowdown,
            "noise": round(delta.noise, 3),
            "noise_factor": bar.noise_factor,
            "fail_pct": bar.fail_pct,
        },
    )


def describe(delta: Delta) -> str:
    """'all_reduce busbw at 4M fell 63% from the baseline (0.81 -> 0.30 GB/s)' and the like."""
    moved = ("rose" if delta.metric == "latency" else "fell") if delta.worse > 0 else "improved"
    unit = f" {delta.unit}" if delta.unit else ""
    values = f"({_value(delta.old)} -> {_value(delta.new)}{unit})"
    if delta.metric in ("busbw", "latency"):
        at = format_size(delta.size_bytes or 0)
        what = "peak busbw" if delta.metric == "busbw" else "latency (lowest time)"
        sizes = delta.sizes
        over = (
            f"size {format_size(sizes[0])}"
            if len(sizes) == 1
            else f"every size {format_size(sizes[0])}-{format_size(sizes[-1])}"
        )
        return (
            f"{delta.probe} {what} at {at} {moved} {abs(delta.worse):.0%} from the baseline {values}, "
            f"{'slower' if delta.worse > 0 else 'faster'} at {over}"
        )
    what = {"score": f"{delta.subject} compute score", "link": f"link {delta.subject}"}
    return (
        f"{what.get(delta.metric, delta.subject)} {moved} {abs(delta.worse):.0%} from the baseline {values}"
    )


def _value(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
