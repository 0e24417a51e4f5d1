"""Judging a finished report against the cluster's own bar (gate/expectations.py).

Each rule kind has one judge, chosen by the rule's key (JUDGES). A judge reads the report's
rows and sections, never measures, and returns a Check: what it measured, whether that meets
the bound (None: this run did not measure it), and the findings of a miss. Every finding cites
its rule (`evidence.rule`: file, key, line, bound) and says it in words, ending with
"(expect.toml:7 probes.all_reduce.min_busbw_gbps)". A miss is a fail: the file is the
cluster's bar, not a hint. Findings name the nodes and ranks a measurement points at (a slow
link's nodes, a node with too few GPUs) and none for job-wide numbers (busbw, DDP tokens/s).

Straggler thresholds are not a second analysis: the health phase's own judge runs again with
the file's thresholds (probes/health/stragglers.rejudge), and its findings replace the run's.

Rules the run did not measure (a probe not run, --health off, --no-ddp, one node) are listed
as not checked in one info finding and in the `expectations` section, never passed silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.gate.expectations import Expectations, Rule
from nccldoctor.net.infiniband import IbPort
from nccldoctor.net.interfaces import Iface, real_nics
from nccldoctor.nodepairs import node_pair_links
from nccldoctor.report import Report
from nccldoctor.rows import Row
from nccldoctor.units import format_size, parse_size, three_digits

STRAGGLER_CODES = ("straggler_rank", "straggler_node")
# A size asked for matches the measured size within this: the collectives round a size down
# to whole elements per rank (all_gather of 1G over 3 ranks moves 1G - 4 B).
SIZE_SLACK = 0.05


@dataclass
class Check:
    rule: Rule
    measured: Any = None  # a number, or None when not measured
    ok: bool | None = None  # None: not checked
    findings: list[Finding] = field(default_factory=list)
    note: str = ""  # why not checked, or what was measured where

    def entry(self) -> dict[str, Any]:
        """The rule's line in the `expectations` section."""
        entry = {"key": self.rule.key, "line": self.rule.line, "bound": self.rule.bound}
        entry |= {"measured": self.measured, "ok": self.ok}
        return entry | ({"note": self.note} if self.note else {})


def not_checked(rule: Rule, why: str) -> Check:
    return Check(rule, note=why)


def _fail(code: str, rule: Rule, message: str, measured: Any, **where: Any) -> Finding:
    evidence = {"rule": rule.cite(), "measured": measured, **where.pop("evidence", {})}
    return make_finding(
        code,
        f"{message} ({rule.source})",
        evidence=evidence,
        severity=Severity.FAIL,
        **where,
    )


def _size(num_bytes: int) -> str:
    """'8M', or '8 B' for a size without a unit (a bare '8' reads as a count)."""
    text = format_size(num_bytes)
    return f"{text} B" if text.isdigit() else text


def _gb(value: float) -> str:
    return f"{three_digits(value)} GB/s"


# -- probes: busbw, latency, share of line rate ------------------------------------------------
def _rows_at(rows: list[Row], rule: Rule, default: Callable[..., int]) -> tuple[int, list[Row]] | str:
    """The rows of the rule's size ("at"), or of `default` (max/min) of the sizes measured;
    a string saying why none match."""
    sizes = sorted({r.size_bytes for r in rows})
    if "at" not in rule.path:
        size = default(sizes)
        return size, [r for r in rows if r.size_bytes == size]
    wanted = parse_size(rule.path[rule.path.index("at") + 1])
    size = min(sizes, key=lambda s: abs(s - wanted))
    if abs(size - wanted) > SIZE_SLACK * wanted:
        measured = f"{format_size(sizes[0])} to {format_size(sizes[-1])}"
        return f"{format_size(wanted)} was not measured (sizes {measured}); widen -b/-e"
    return size, [r for r in rows if r.size_bytes == size]


def _probe_rows(report: Report, rule: Rule) -> list[Row] | str:
    probe = rule.path[1]
    rows = [r for r in report.probe_results if r.probe == probe and r.time_us is not None]
    return rows or f"{probe} was not measured in this run (--probes)"


def judge_busbw(rule: Rule, report: Report) -> Check:
    rows = _probe_rows(report, rule)
    picked = rows if isinstance(rows, str) else _rows_at(rows, rule, max)
    if isinstance(picked, str):
        return not_checked(rule, picked)
    size, at_size = picked
    best = max(at_size, key=lambda r: r.busbw_gbps)
    check = Check(rule, best.busbw_gbps, best.busbw_gbps >= rule.bound, note=f"at {_size(size)}")
    if not check.ok:
        message = (
            f"{best.probe} busbw {_gb(best.busbw_gbps)} at {_size(size)} is below the "
            f"{rule.bound:g} GB/s this cluster expects"
        )
        evidence = {"probe": best.probe, "size_bytes": size, "slowest_rank": best.slowest_rank}
        check.findings.append(_fail("low_bandwidth", rule, message, best.busbw_gbps, evidence=evidence))
    return check


def judge_latency(rule: Rule, report: Report) -> Check:
    rows = _probe_rows(report, rule)
    picked = rows if isinstance(rows, str) else _rows_at(rows, rule, min)
    if isinstance(picked, str):
        return not_checked(rule, picked)
    size, at_size = picked
    best = min(at_size, key=lambda r: r.time_us)
    check = Check(rule, best.time_us, best.time_us <= rule.bound, note=f"at {_size(size)}")
    if not check.ok:
        message = (
            f"{best.probe} took {three_digits(best.time_us)} us at {_size(size)}, above the "
            f"{rule.bound:g} us this cluster expects"
        )
        evidence = {"probe": best.probe, "size_bytes": size, "slowest_rank": best.slowest_rank}
        check.findings.append(_fail("high_latency", rule, message, best.time_us, evidence=evidence))
    return check


def judge_line_rate_share(rule: Rule, report: Report) -> Check:
    speed = report.sections.get("speed") or {}
    probe = rule.path[1]
    line = speed.get("line_rate")
    entry = next((p for p in speed.get("probes", []) if p["probe"] == probe), None)
    if entry is None:
        return not_checked(rule, f"{probe} was not measured in this run (--probes)")
    if line is None:
        return not_checked(rule, "no line rate: a one-node run, or a NIC that reports no speed")
    share = entry["share_of_line_rate"]
    check = Check(rule, share, share >= rule.bound, note=f"of {line['gbit_s']:g} Gb/s ({line['via']})")
    if not check.ok:
        message = (
            f"{probe} peak busbw {_gb(entry['peak_busbw_gbps'])} is {share:.0%} of the "
            f"{line['gbit_s']:g} Gb/s line rate ({line['via']}), below the {rule.bound:.0%} this "
            "cluster expects"
        )
        evidence = {"probe": probe, "peak_busbw_gbps": entry["peak_busbw_gbps"], "line_rate": line}
        check.findings.append(_fail("low_bandwidth", rule, message, share, evidence=evidence))
    return check


# -- links -------------------------------------------------------------------------------------
RING_KINDS = {
    "min_ring_gbps": ("ring_inter", "ring_intra"),
    "min_ring_inter_gbps": ("ring_inter",),
    "min_ring_intra_gbps": ("ring_intra",),
}


def _pair_links(section: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"src_node": a, "dst_node": b, "gbps": gbps}
        for a, b, gbps in node_pair_links(section.get("node_pairs"))
    ]


def _link_label(link: dict[str, Any], hostnames: dict[int, str]) -> str:
    def node(n: int) -> str:
        return f"node {n}" + (f" ({hostnames[n]})" if n in hostnames else "")

    ranks = f"rank {link['src_rank']} -> rank {link['dst_rank']}, " if "src_rank" in link else ""
    return f"{ranks}{node(link['src_node'])} -> {node(link['dst_node'])}"


def judge_links(rule: Rule, report: Report) -> Check:
    section = report.sections.get("stragglers")
    if section is None:
        return not_checked(rule, "links were not measured (--health off)")
    name = rule.path[-1]
    if name == "min_node_pair_gbps":
        links = _pair_links(section)
    else:
        links = [link for link in section.get("ring", []) if link["kind"] in RING_KINDS[name]]
    if not links:
        return not_checked(rule, "no such link in this run (one node, or one rank per node)")
    slowest = min(link["gbps"] for link in links)
    check = Check(rule, slowest, slowest >= rule.bound, note=f"slowest of {len(links)} links")
    slow = [link for link in links if link["gbps"] < rule.bound]
    if slow:
        check.findings.append(_links_finding(rule, slow, _hostnames(report)))
    return check


def _links_finding(rule: Rule, slow: list[dict[str, Any]], hostnames: dict[int, str]) -> Finding:
    """One finding for the rule: the node every slow link touches when there is one, else the
    nodes of the slow links (with two nodes both are named: nothing tells them apart)."""
    touching = [{link["src_node"], link["dst_node"]} for link in slow]
    common = set.intersection(*touching)
    nodes = common if len(common) == 1 else set.union(*touching)
    ranks = {r for link in slow for r in (link.get("src_rank"), link.get("dst_rank")) if r is not None}
    listed = "; ".join(f"{_link_label(link, hostnames)} {_gb(link['gbps'])}" for link in slow[:6])
    more = f" and {len(slow) - 6} more" if len(slow) > 6 else ""
    message = f"{len(slow)} link(s) below the {rule.bound:g} GB/s this cluster expects: {listed}{more}"
    slowest = min(link["gbps"] for link in slow)
    return _fail("slow_link", rule, message, slowest, nodes=nodes, ranks=ranks, evidence={"slow_links": slow})


# -- the job's shape ---------------------------------------------------------------------------
def _hostnames(report: Report) -> dict[int, str]:
    return {n["node_rank"]: n["hostname"] for n in report.job.get("nodes", [])}


def judge_nodes(rule: Rule, report: Report) -> Check:
    nnodes = report.job.get("nnodes", len(report.job.get("nodes", [])))
    check = Check(rule, nnodes, nnodes == rule.bound)
    if not check.ok:
        message = f"the job ran on {nnodes} node(s), not the {rule.bound} this cluster expects"
        check.findings.append(_fail("node_count_mismatch", rule, message, nnodes))
    return check


def _per_node(rule: Rule, report: Report, counts: dict[int, int], code: str, what: str) -> Check:
    """A per-node count against the bound: one finding naming every node that differs."""
    off = {node: n for node, n in counts.items() if n != rule.bound}
    shown = next(iter(off.values()), next(iter(counts.values())))
    check = Check(rule, shown, not off, note="" if not off else f"{len(off)} of {len(counts)} nodes")
    if off:
        hostnames = _hostnames(report)
        listed = ", ".join(f"node {n} ({hostnames.get(n, '?')}) has {c}" for n, c in sorted(off.items()))
        message = f"{listed} {what}; this cluster expects {rule.bound} per node"
        evidence = {"per_node": {str(n): c for n, c in counts.items()}}
        check.findings.append(_fail(code, rule, message, shown, nodes=off, evidence=evidence))
    return check


def judge_gpus(rule: Rule, report: Report) -> Check:
    nodes = (report.sections.get("consistency") or {}).get("nodes") or []
    if not nodes:
        return not_checked(rule, "no consistency section (GPUs per node were not counted)")
    counts = {n["node"]: n["gpus_visible"] for n in nodes}
    return _per_node(rule, report, counts, "gpu_count_mismatch", "visible GPU(s)")


def nic_count(node: dict[str, Any]) -> int:
    """A node's NICs as a gate counts them: its active InfiniBand/RoCE ports when it has any
    IB device (NCCL's transport; a down port is a missing NIC), else its real Ethernet NICs
    (up, addressed, not loopback or virtual)."""
    ports = [IbPort.from_json(p) for p in node.get("ib_ports", [])]
    if ports:
        return sum(p.nccl_usable for p in ports)
    fields = ("name", "up", "mtu", "speed_mbps")
    ifaces = [
        Iface(**{k: i[k] for k in fields if k in i}, addresses=tuple(i.get("addresses", ())))
        for i in node.get("interfaces", [])
    ]
    return len(real_nics(ifaces))


def judge_nics(rule: Rule, report: Report) -> Check:
    nodes = (report.sections.get("network") or {}).get("nodes") or []
    if not nodes:
        return not_checked(rule, "no network section (NICs were not listed)")
    counts = {n["node_rank"]: nic_count(n) for n in nodes}
    return _per_node(rule, report, counts, "nic_count_mismatch", "active NIC(s) (IB ports, else Ethernet)")


# -- DDP ---------------------------------------------------------------------------------------
def judge_tokens(rule: Rule, report: Report) -> Check:
    throughput = (report.sections.get("ddp") or {}).get("throughput") or {}
    tokens = throughput.get("tokens_per_s")
    if tokens is None:
        return not_checked(rule, "the DDP benchmark did not run (--no-ddp)")
    check = Check(rule, tokens, tokens >= rule.bound)
    if not check.ok:
        model = (report.sections["ddp"].get("model") or {}).get("preset", "?")
        message = (
            f"the DDP benchmark ({model}) trained {three_digits(tokens)} tokens/s, below the "
            f"{rule.bound:g} tokens/s this cluster expects"
        )
        check.findings.append(_fail("low_ddp_throughput", rule, message, tokens, evidence={"model": model}))
    return check


Judge = Callable[[Rule, Report], Check]
JUDGES: dict[tuple[str, str], Judge] = {
    ("probes", "min_busbw_gbps"): judge_busbw,
    ("probes", "max_latency_us"): judge_latency,
    ("probes", "min_share_of_line_rate"): judge_line_rate_share,
    **{("links", name): judge_links for name in (*RING_KINDS, "min_node_pair_gbps")},
    ("job", "nodes"): judge_nodes,
    ("job", "gpus_per_node"): judge_gpus,
    ("job", "nics_per_node"): judge_nics,
    ("ddp", "min_tokens_per_s"): judge_tokens,
}


# -- stragglers: the health phase's judge, with the file's thresholds ---------------------------
def judge_stragglers(rules: list[Rule], report: Report) -> list[Check]:
    """Both straggler rules at once (they are one judgement); replaces the run's findings."""
    section = report.sections.get("stragglers")
    if section is None:
        return [not_checked(rule, "ranks were not scored (--health off)") for rule in rules]
    given = {rule.path[-1]: rule for rule in rules}
    run = section.get("thresholds", {})
    warn = given["warn_score"].bound if "warn_score" in given else run.get("warn", 0.9)
    fail = given["fail_score"].bound if "fail_score" in given else run.get("fail", 0.75)
    from nccldoctor.probes.health.stragglers import ScoreThresholds, rejudge  # torch: only here

    if not 0 < fail < warn <= 1:
        why = f"fail score {fail:g} is not below warn score {warn:g} (with the run's --straggler-*)"
        return [not_checked(rule, why) for rule in rules]
    findings = rejudge(section, ScoreThresholds(warn=warn, fail=fail), _hostnames(report))
    if findings is None:
        return [not_checked(rule, "this report does not keep the scores' inputs") for rule in rules]
    report.findings = [f for f in report.findings if not _straggler_judgement(f)]
    checks = _straggler_checks(given, findings, section)
    report.findings += [_cite(f, given) for f in findings]
    return checks


def _straggler_judgement(finding: Finding) -> bool:
    """The run's own straggler findings, and its note on nodes too crowded to judge."""
    skipped = finding.code == "probe_skipped" and finding.evidence.get("probe") == "straggler_rank"
    return finding.code in STRAGGLER_CODES or skipped


def _straggler_checks(
    given: dict[str, Rule], findings: list[Finding], section: dict[str, Any]
) -> list[Check]:
    lowest = min((row["score"] for row in section.get("ranks", [])), default=None)
    named = [f for f in findings if f.code in STRAGGLER_CODES]
    checks = []
    for name, rule in given.items():
        missed = named if name == "warn_score" else [f for f in named if f.severity == Severity.FAIL]
        checks.append(Check(rule, lowest, not missed, note="the lowest rank score"))
    return checks


def _cite(finding: Finding, given: dict[str, Rule]) -> Finding:
    if finding.code not in STRAGGLER_CODES:
        return finding
    name = "fail_score" if finding.severity == Severity.FAIL and "fail_score" in given else "warn_score"
    rule = given.get(name) or next(iter(given.values()))
    finding.evidence = {"rule": rule.cite(), **finding.evidence}
    finding.message += f" ({rule.source})"
    return finding


# -- the report --------------------------------------------------------------------------------
def check_rules(expectations: Expectations, report: Report) -> list[Check]:
    straggler_rules = [r for r in expectations.rules if r.path[0] == "stragglers"]
    checks = [
        JUDGES[(r.path[0], r.path[-1])](r, report) for r in expectations.rules if r.path[0] != "stragglers"
    ]
    if straggler_rules:
        checks += judge_stragglers(straggler_rules, report)
    order = {rule: i for i, rule in enumerate(expectations.rules)}
    return sorted(checks, key=lambda c: order[c.rule])


def judge_report(expectations: Expectations, report: Report) -> Report:
    """The report with the file's findings and its `expectations` section (changed in place)."""
    checks = check_rules(expectations, report)
    report.findings += [f for check in checks for f in check.findings]
    unchecked = [c for c in checks if c.ok is None]
    if unchecked:
        report.findings.append(_not_checked_finding(expectations, unchecked))
    _speed_note(expectations, report)
    report.sections["expectations"] = {
        "file": expectations.file,
        "description": expectations.description,
        "rules": [check.entry() for check in checks],
    }
    return report


def _speed_note(expectations: Expectations, report: Report) -> None:
    """The speed section says what judged it: without this it would say "not judged"."""
    speed = report.sections.get("speed")
    probes = sorted({rule.path[1] for rule in expectations.rules if rule.path[0] == "probes"})
    if not speed or not probes:
        return
    note = f"judged against {Path(expectations.file).name} for {', '.join(probes)}"
    speed["note"] = f"{note}; {speed['note']}" if speed.get("judged") else note


def _not_checked_finding(expectations: Expectations, unchecked: list[Check]) -> Finding:
    listed = "; ".join(f"{c.rule.source}: {c.note}" for c in unchecked)
    return make_finding(
        "expectation_not_checked",
        f"{len(unchecked)} expectation(s) of {expectations.file} not checked: {listed}",
        evidence={"rules": [{**c.rule.cite(), "why": c.note} for c in unchecked]},
    )
