"""The explain run as a Report: the bench's contract (findings, verdict, exit code, sinks),
no measured rows, and a `logs` section saying what was read."""

from __future__ import annotations

from typing import Any

from nccldoctor.explain.engine import explain, is_unexplained
from nccldoctor.explain.events import Scan, scan
from nccldoctor.explain.reader import Source
from nccldoctor.findings import Finding
from nccldoctor.report import Report


def explain_sources(sources: list[Source]) -> Report:
    state = scan(sources)
    findings = explain(state)
    return build_report(state, sources, findings)


def build_report(state: Scan, sources: list[Source], findings: list[Finding]) -> Report:
    hosts = sorted(state.hosts)
    job = {
        "world_size": max(state.ranks) + 1 if state.ranks else None,
        "nnodes": len(hosts) or None,
        "backend": None,
        "device": None,
        "nodes": [{"node_rank": None, "hostname": h, "ranks": []} for h in hosts],
    }
    return Report(
        job=job,
        environment={"variables": {}, "differs_by_node": {}},
        results=[],
        findings=findings,
        # A failure the catalogue cannot name is reported like a run that did not finish: exit 3.
        complete=not is_unexplained(findings),
        sections={"logs": logs_section(state, sources, findings)},
    )


def logs_section(state: Scan, sources: list[Source], findings: list[Finding]) -> dict[str, Any]:
    return {
        "files": [
            {"file": s.name, "lines": s.stats.lines, "bytes": s.stats.bytes, "error": s.stats.error}
            for s in sources
        ],
        "lines": sum(s.stats.lines for s in sources),
        "bytes": sum(s.stats.bytes for s in sources),
        "time_span": [state.first_time[1], state.last_time[1]]
        if state.first_time and state.last_time
        else None,
        "ranks_seen": sorted(state.ranks),
        "hosts_seen": sorted(state.hosts),
        "matched_lines": sum(e.count for e in state.events) + sum(state.dropped.values()),
        "root_cause": root_cause_line(findings),
    }


def root_cause_line(findings: list[Finding]) -> str:
    """The output's first line: the most likely root cause, or that nothing failed."""
    if not findings or findings[0].severity.value != "fail":
        return "no failure found in the logs"
    first = findings[0]
    if first.code == "unexplained_failure":
        return f"a failure nccldoctor cannot explain: {first.message}"
    return f"root cause: {first.code}: {first.message}"
