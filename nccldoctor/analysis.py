"""Findings judged from the measured rows (run on the report writer only)."""

from __future__ import annotations

from collections.abc import Callable

from nccldoctor.findings import Finding, make_finding
from nccldoctor.rows import Row
from nccldoctor.units import format_size

NodesOf = Callable[[list[int]], list[int]]


def judge_rows(
    rows: list[Row],
    expect_busbw: dict[str, float],
    nodes_of: NodesOf,
    probes_run: list[str] | None = None,
) -> list[Finding]:
    return wrong_data(rows, nodes_of) + low_bandwidth(rows, expect_busbw, probes_run)


def ranks_text(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


def wrong_data(rows: list[Row], nodes_of: NodesOf) -> list[Finding]:
    """One finding per probe that returned wrong values, naming the ranks to suspect.

    Where the output is made of chunks sent by known ranks (all_gather, all_to_all,
    broadcast, sendrecv), the suspects are the senders of the wrong chunks; for reductions
    they are the ranks that saw wrong values.
    """
    findings = []
    for probe in dict.fromkeys(r.probe for r in rows):
        bad = [r for r in rows if r.probe == probe and (r.wrong or 0) > 0]
        if not bad:
            continue
        seen_at = sorted({rank for r in bad for rank in r.wrong_ranks})
        senders = sorted({rank for r in bad for rank in r.wrong_sources})
        suspects = senders or seen_at
        total = sum(r.wrong for r in bad)
        where = (
            f"data sent by {ranks_text(senders)} arrived wrong (seen on {ranks_text(seen_at)})"
            if senders
            else f"wrong values on {ranks_text(seen_at)}"
        )
        findings.append(
            make_finding(
                "wrong_data",
                f"{probe}: {total} wrong elements at {len(bad)} size(s); {where}",
                ranks=suspects,
                nodes=nodes_of(suspects),
                evidence={
                    "probe": probe,
                    "wrong_elements": total,
                    "seen_at_ranks": seen_at,
                    "sent_by_ranks": senders,
                    "rows": [
                        {"size_bytes": r.size_bytes, "inplace": r.inplace, "wrong": r.wrong} for r in bad
                    ],
                },
            )
        )
    return findings


def low_bandwidth(
    rows: list[Row], expect_busbw: dict[str, float], probes_run: list[str] | None = None
) -> list[Finding]:
    """busbw at each probe's largest size against the user's stated expectation."""
    findings = []
    for probe, expected in expect_busbw.items():
        measured = [r for r in rows if r.probe == probe]
        if not measured:
            if probes_run is not None and probe in probes_run:
                findings.append(
                    make_finding(
                        "low_bandwidth",
                        f"{probe}: no size was measured, so the expected {expected:g} GB/s was not shown",
                        evidence={"probe": probe, "expected_busbw_gbps": expected},
                        fix="raise --max-bytes so the probe measures at least one size",
                    )
                )
            continue
        largest = max(r.size_bytes for r in measured)
        best = max((r for r in measured if r.size_bytes == largest), key=lambda r: r.busbw_gbps)
        if best.busbw_gbps >= expected:
            continue
        findings.append(
            make_finding(
                "low_bandwidth",
                f"{probe} reached {best.busbw_gbps:.2f} GB/s busbw at {format_size(largest)}, "
                f"below the expected {expected:g} GB/s ({best.busbw_gbps / expected:.0%}); "
                f"slowest rank {best.slowest_rank}",
                evidence={
                    "probe": probe,
                    "size_bytes": largest,
                    "busbw_gbps": best.busbw_gbps,
                    "expected_busbw_gbps": expected,
                    "slowest_rank": best.slowest_rank,
                    "max_time_us": best.max_time_us,
                    "time_us": best.time_us,
                },
            )
        )
    return findings
