"""The hosts to keep out of the next job, from the report's fail findings.

Precision first: a gate that drains a healthy node is worse than none. A host is excluded only
when a `fail` finding points at its node, or at ranks or links on it. A finding that points at
nobody (a config error, low bandwidth measured on the whole job) drains nobody, and so does one
that names every node of a multi-node job: it says the job is wrong, not which node. `warn` and
`info` findings drain nobody.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nccldoctor.findings import Finding, Severity
from nccldoctor.gate.hostlist import compress, sort_key

SECTION = "exclude"

# Codes that name a node only as the yardstick the suspects were compared with, not as a suspect.
REFERENCE_NODE = {"iface_mismatch": 0}  # "share no subnet with node 0's": node 0 is the reference
# Fail codes that say nothing about a node even when they list ranks: a signal from the user or
# the scheduler stopped the run (the ranks it reached are not at fault); the training code or
# the launch is wrong (ranks sharing a sampler shard, calling different collectives, disagreeing
# on the world size, a DataLoader worker dying); a failure no signature explains.
NOT_A_NODE_FAULT = frozenset(
    {"run_interrupted", "sampler_overlap", "collective_mismatch", "rank_mismatch"}
    | {"dataloader_worker_died", "unexplained_failure"}
)


def node_maps(job: dict[str, Any]) -> tuple[dict[int, str], dict[int, int]]:
    """(node rank -> hostname, global rank -> node rank) from report.job.nodes."""
    hostnames, node_of = {}, {}
    for node in job.get("nodes") or []:
        hostnames[node["node_rank"]] = node["hostname"]
        for rank in node.get("ranks", []):
            node_of[rank] = node["node_rank"]
    return hostnames, node_of


def suspect_nodes(finding: Finding, node_of: dict[int, int], all_nodes: set[int]) -> set[int]:
    """The nodes a fail finding blames (its nodes and its ranks' nodes); empty when job-wide."""
    if finding.severity is not Severity.FAIL or finding.code in NOT_A_NODE_FAULT:
        return set()
    named = set(finding.nodes) | {node_of[r] for r in finding.ranks if r in node_of}
    named.discard(REFERENCE_NODE.get(finding.code, -1))
    named &= all_nodes  # a node the report does not know has no hostname to exclude
    if len(all_nodes) > 1 and named >= all_nodes:
        return set()  # every node of a multi-node job: the job is wrong, not a node
    return named


def exclusions(job: dict[str, Any], findings: Iterable[Finding]) -> dict[str, Any]:
    """The `exclude` section: {hosts, slurm, reasons: {host: [{code, message}]}}."""
    hostnames, node_of = node_maps(job)
    reasons: dict[str, list[dict[str, str]]] = {}
    for finding in findings:
        for node in sorted(suspect_nodes(finding, node_of, set(hostnames))):
            why = {"code": finding.code, "message": finding.message}
            host_reasons = reasons.setdefault(hostnames[node], [])
            if why not in host_reasons:  # two nodes sharing a hostname: one reason once
                host_reasons.append(why)
    hosts = sorted(reasons, key=sort_key)
    return {"hosts": hosts, "slurm": compress(hosts), "reasons": {host: reasons[host] for host in hosts}}


def exclude_of(report: Any) -> dict[str, Any]:
    """The report's `exclude` section, or (a report written before it existed, a preflight or
    explain report) the same section computed from its findings."""
    section = report.sections.get(SECTION)
    return section if section is not None else exclusions(report.job, report.findings)
