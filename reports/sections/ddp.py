"""The DDP benchmark's section: throughput, communication, sharding, and the checkpoint round trip."""

from __future__ import annotations

import re

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.reports.tables import number, percent
from nccldoctor.units import format_bytes


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
        ("gradients per step", f"{format_bytes(comm['gradient_bytes'])} in {_buckets(comm)}"),
        ("fwd+bwd synced / no_sync", f"{comm['synced_fb_ms']:.1f} / {comm['no_sync_fb_ms']:.1f} ms"),
        (
            "exposed communication",
            f"{comm['exposed_ms']:.1f} ms, {percent(comm['share_of_step'])} of the step",
        ),
        # What the number is: DDP all-reduces each bucket once, so its time is bytes / algbw
        # (busbw is algbw scaled for the links, not what a bucket waits for).
        (
            "all-reduce predicted (bytes / all_reduce algbw)",
            _ms(comm["predicted_allreduce_ms"]) + _sources(comm),
        ),
        ("all-reduce DDP spent (Gloo)", _ms(comm["ddp_allreduce_ms"])),
        ("DDP / all_reduce bandwidth", percent(comm["fraction_of_probe_bandwidth"])),
        ("hidden by overlap", percent(comm["hidden_by_overlap"])),
        ("loss first -> last", f"{ok['loss_first']:.3f} -> {ok['loss_last']:.3f}"),
        ("replicas identical", "yes" if ok["checksums_equal"] else f"no: {_ranks(ok['differing_ranks'])}"),
    ]
    if ddp.get("sampler"):  # reports saved before the sharding check have none
        lines.append(("sampler shards", _sampler(ddp["sampler"])))
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
            format_bytes(r["bytes"]),
            number(r["write_mb_s"], ".1f"),
            number(r["read_mb_s"], ".1f"),
            r["write_error"] or "; ".join(r["missing"] + r["corrupt"]) or "ok",
        ]
        for r in checkpoint["ranks"]
    ]
    return pd.DataFrame(
        lines, columns=["rank", "node", "shard", "write MB/s", "read MB/s", "missing or wrong"]
    )


def _sources(comm: dict) -> str:
    """Where the bandwidth came from: the probes' rows, or all_reduces measured at bucket sizes."""
    sources = sorted({_human(b["source"]) for b in comm["buckets"] if b.get("busbw_gbps") is not None})
    return f" (all_reduce {'; '.join(sources)})" if sources else ""


def _human(source: str) -> str:
    """Reports saved before sources said '1.79 MiB' wrote 'measured at 1882112 B': `show` too
    prints bytes in human units."""
    return re.sub(r"\b(\d+) B\b", lambda m: format_bytes(int(m[1])), source)


def _sampler(sampler: dict) -> str:
    """One line: the layout, then the verdicts of the shards, the epoch order and the RNG."""
    layout = (
        f"{sampler['dataset_size']:,} items over {sampler['world']} ranks, {sampler['per_rank']:,} each "
        f"({sampler['padded']} padded)"
    )
    problems = [f"ranks {a} and {b} overlap" for a, b in sampler["overlapping_ranks"][:3]]
    if sampler["uncovered"]:
        problems.append(f"uncovered: {', '.join(map(str, sampler['uncovered']))}")
    if sampler["order_changed"] is False:
        problems.append("set_epoch kept the order")
    shards = "; ".join(problems) or "disjoint, complete, reordered by set_epoch"
    rng = sampler.get("rng") or {}
    same = "; ".join(_ranks(group) for group in rng.get("identical", []))
    streams = f"RNG streams identical: {same}" if same else "RNG streams differ per rank"
    return f"{layout}: {shards}; {streams}"


def _buckets(comm: dict) -> str:
    count = len(comm["buckets"])
    return f"{count} bucket" if count == 1 else f"{count} buckets"


def _ranks(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


@view("ddp", order=50)
def draw(report: Report) -> list[Table]:
    checkpoint_dir = report.sections["ddp"].get("checkpoint", {}).get("dir")
    return [
        ("DDP reference training benchmark", ddp_table(report)),
        (f"Checkpoint round trip ({checkpoint_dir})", checkpoint_table(report)),
    ]
