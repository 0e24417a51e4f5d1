"""junit.xml: the run as JUnit results, for a CI job's test tab (GitHub Actions test reporters,
GitLab's unit test reports, Jenkins' junit step).

testsuites > testsuite (one per check) > testcase: one case per check per node (network,
consistency, health), per collective probe, and one per job-wide check (ddp, the sweeps, the run
itself). A `fail` finding is a <failure> on the case it points at, carrying the finding's
message, where, an evidence summary and the fix; a warning is a pass with the warning in
system-out (a failure under --strict, as the exit code has it); a skipped probe is <skipped>;
a run that did not finish puts an <error> on every check that did not finish and on `run`.
"""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nccldoctor.atomic import write_atomically
from nccldoctor.findings import INCOMPLETE_CODES, Finding, Severity
from nccldoctor.gate.exclude import exclude_of, node_maps
from nccldoctor.report import Report
from nccldoctor.reports.tables import where

FILENAME = "junit.xml"
JOB = "job"  # the case of a check that has no node or probe to name
PER_NODE = ("network", "consistency", "health")
_CODES = {
    "network": "iface_missing iface_down iface_virtual iface_mismatch mtu_mismatch port_blocked "
    "nccl_transport_fallback nccl_iface_unexpected",
    "consistency": "gpu_count_mismatch version_mismatch rank_layout_uneven env_mismatch duplicate_gpu "
    "clock_skew fs_inconsistent code_mismatch path_missing path_differs",
    "health": "straggler_rank straggler_node slow_link host_contention gpu_throttled gpu_ecc_errors "
    "gpu_pcie_degraded gpu_unhealthy",
    "collectives": "wrong_data low_bandwidth high_latency probe_skipped",
    "nic_sweep": "iface_slower_than_best ib_port_slow",
    "ddp": "ddp_divergence sampler_overlap rng_identical ckpt_failed",
    "settings_sweep": "tuning_recommendation sweep_inconclusive sweep_setting_ignored sweep_variant_failed",
    "preflight": "master_unresolvable master_unreachable master_not_listening",
    "run": " ".join(sorted(INCOMPLETE_CODES)),
}
CHECK_OF = {code: check for check, codes in _CODES.items() for code in codes.split()}
OTHER = "findings"  # codes of other commands (explain) and of the gate that no check above owns
# Job-wide checks that have a case when their section is in the report.
SECTION_CHECKS = {"ddp": "ddp", "nic_sweep": "nic_sweep", "settings_sweep": "settings_sweep"}
SECTION_CHECKS |= {"preflight": "preflight", "logs": "explain"}
EVIDENCE_CHARS = 600
# XML 1.0 cannot carry most control characters; a log line quoted in a message may have some.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass
class Case:
    check: str
    name: str
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    unfinished: bool = False  # the run stopped before this check finished


class Cases:
    """The test cases of one report, keyed (check, name), in the order they were first made."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.hosts, self.node_of = node_maps(report.job)
        self.by_key: dict[tuple[str, str], Case] = {}

    def case(self, check: str, name: str) -> Case:
        key = (check, name)
        if key not in self.by_key:
            self.by_key[key] = Case(check, name, seconds=phase_seconds(self.report, check, name))
        return self.by_key[key]

    def node_name(self, node: int) -> str:
        return f"node {node} ({self.hosts[node]})" if node in self.hosts else f"node {node}"

    def per_node(self, check: str) -> list[Case]:
        return [self.case(check, self.node_name(n)) for n in sorted(self.hosts)] or [self.case(check, JOB)]

    def place(self, finding: Finding) -> list[Case]:
        """The cases a finding belongs to: its probe's, its nodes' (ranks mapped to nodes), or the job's."""
        check = CHECK_OF.get(finding.code, OTHER)
        probe = finding.evidence.get("probe")
        if check == "collectives" or (check == OTHER and isinstance(probe, str)):
            return [self.case("collectives", probe if isinstance(probe, str) else JOB)]
        if check in PER_NODE:
            nodes = set(finding.nodes) | {self.node_of[r] for r in finding.ranks if r in self.node_of}
            return [self.case(check, self.node_name(n)) for n in sorted(nodes)] or [self.case(check, JOB)]
        return [self.case(check, JOB)]


def phase_seconds(report: Report, check: str, name: str) -> float:
    """How long the check ran: the `timing` section's phase seconds, else the section's own."""
    timing = report.sections.get("timing") or {}
    if check == "run" and timing.get("run_s") is not None:
        return float(timing["run_s"])
    phases = timing.get("phases_s") or {}
    phase = name if check == "collectives" else check
    if phase in phases:
        return float(phases[phase])
    seconds = (report.sections.get("stragglers" if check == "health" else check) or {}).get("seconds")
    if isinstance(seconds, dict):  # the network check: {"interfaces": s, "ports": s}
        return float(sum(v for v in seconds.values() if isinstance(v, (int, float))))
    return float(seconds) if isinstance(seconds, (int, float)) else 0.0


def build_cases(report: Report) -> list[Case]:
    """Every case the report has: the checks that ran, those its findings name, those that did not finish."""
    cases = Cases(report)
    cases.case("run", JOB)
    for check, section in (("network", "network"), ("consistency", "consistency"), ("health", "stragglers")):
        if section in report.sections or (check == "health" and "health" in report.sections):
            cases.per_node(check)
    for probe in dict.fromkeys(row.probe for row in report.probe_results):
        cases.case("collectives", probe)
    for section, check in SECTION_CHECKS.items():
        if section in report.sections:
            cases.case(check, JOB)
    for finding in report.findings:
        for case in cases.place(finding):
            case.findings.append(finding)
    if not report.complete:
        for case in unfinished(report, cases):
            case.unfinished = True
    return list(cases.by_key.values())


def unfinished(report: Report, cases: Cases) -> list[Case]:
    """The checks the run's config planned that left nothing in the report, and the run itself."""
    config = report.sections.get("config") or {}
    missing = [cases.case("run", JOB)]
    for check, section in (("network", "network"), ("consistency", "consistency")):
        if config and section not in report.sections:
            missing += cases.per_node(check)
    if config.get("health") and not {"stragglers", "health"} & report.sections.keys():
        missing += cases.per_node("health")
    if config.get("ddp") and "ddp" not in report.sections:
        missing.append(cases.case("ddp", JOB))
    measured = {row.probe for row in report.probe_results}
    skipped = {f.evidence.get("probe") for f in report.findings if f.code == "probe_skipped"}
    if not config.get("ddp_only"):
        missing += [
            cases.case("collectives", p) for p in config.get("probes", []) if p not in measured | skipped
        ]
    return missing


def describe(finding: Finding, hostnames: dict[int, str]) -> str:
    """A finding as a failure's text: what, where, message, evidence (cut short) and fix."""
    evidence = json.dumps(finding.evidence, default=str, sort_keys=True)
    if len(evidence) > EVIDENCE_CHARS:
        evidence = evidence[:EVIDENCE_CHARS] + " ...(cut; report.json has it all)"
    return (
        f"{finding.severity.value} {finding.code} at {where(finding, hostnames)}\n"
        f"{finding.message}\nevidence: {evidence}\nfix: {finding.fix}\n"
    )


def _text(value: str) -> str:
    return _NOT_XML.sub("?", value)


def _outcome(case: Case, report: Report) -> tuple[str | None, list[Finding]]:
    """('error' | 'failure' | 'skipped' | None, the findings that made it)."""
    failing = {Severity.FAIL, Severity.WARN} if report.strict else {Severity.FAIL}
    if case.unfinished:
        stopped = [f for f in report.findings if f.code in INCOMPLETE_CODES]
        return "error", stopped + [f for f in case.findings if f not in stopped]
    failed = [f for f in case.findings if f.severity in failing]
    if failed:
        return "failure", failed
    skipped = [f for f in case.findings if f.code == "probe_skipped"]
    return ("skipped", skipped) if skipped else (None, [])


def case_element(case: Case, report: Report, hostnames: dict[int, str]) -> tuple[ET.Element, str | None]:
    element = ET.Element(
        "testcase", name=case.name, classname=f"nccldoctor.{case.check}", time=f"{case.seconds:.3f}"
    )
    kind, why = _outcome(case, report)
    if kind == "error" and not why:
        ET.SubElement(element, "error", message="the run did not finish", type="incomplete")
    elif kind:
        first = why[0]
        more = f" (and {len(why) - 1} more)" if len(why) > 1 else ""
        result = ET.SubElement(element, kind, message=_text(first.message + more), type=first.code)
        if kind != "skipped":
            result.text = _text("\n".join(describe(f, hostnames) for f in why))
    said = [f for f in case.findings if f not in why]
    if said:  # warnings (and notes) of a passing case: CI shows them with the case's output
        ET.SubElement(element, "system-out").text = _text("\n".join(describe(f, hostnames) for f in said))
    return element, kind


def suite_element(check: str, cases: list[Case], report: Report, hostnames: dict[int, str]) -> ET.Element:
    suite = ET.Element("testsuite", name=check, timestamp=report.created)
    if check == "run":  # the verdict and the exclude list, for a CI step that reads no JSON
        properties = ET.SubElement(suite, "properties")  # JUnit's schema wants it first
        for name, value in run_properties(report).items():
            ET.SubElement(properties, "property", name=name, value=_text(str(value)))
    kinds = []
    for case in cases:
        element, kind = case_element(case, report, hostnames)
        suite.append(element)
        kinds.append(kind)
    # The nodes ran a per-node check at the same time: the check took as long as its longest case.
    seconds = [case.seconds for case in cases]
    _count(suite, kinds, max(seconds) if check in PER_NODE else sum(seconds))
    return suite


def run_properties(report: Report) -> dict[str, Any]:
    job, exclude = report.job, exclude_of(report)
    return {
        "verdict": report.verdict,
        "exit_code": report.exit_code,
        "backend": job.get("backend"),
        "world_size": job.get("world_size"),
        "nnodes": job.get("nnodes"),
        "exclude": exclude["slurm"],
    }


def _count(element: ET.Element, kinds: list[str | None], seconds: float) -> None:
    element.set("tests", str(len(kinds)))
    for kind, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        element.set(attribute, str(kinds.count(kind)))
    element.set("time", f"{seconds:.3f}")


def render(report: Report) -> ET.ElementTree:
    from nccldoctor.reports.tables import hostnames as distinct_hostnames

    names = distinct_hostnames(report)
    by_check: dict[str, list[Case]] = {}
    for case in build_cases(report):
        by_check.setdefault(case.check, []).append(case)
    root = ET.Element("testsuites", name="nccldoctor")
    suites = [suite_element(check, cases, report, names) for check, cases in by_check.items()]
    root.extend(suites)
    for attribute in ("tests", "failures", "errors", "skipped"):
        root.set(attribute, str(sum(int(s.get(attribute)) for s in suites)))
    run_s = (report.sections.get("timing") or {}).get("run_s")
    root.set("time", f"{run_s if run_s is not None else sum(float(s.get('time')) for s in suites):.3f}")
    tree = ET.ElementTree(root)
    ET.indent(tree)
    return tree


class JUnitSink:
    @classmethod
    def from_options(cls, options: object) -> JUnitSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        document = io.BytesIO()
        render(report).write(document, encoding="utf-8", xml_declaration=True)
        write_atomically(out_dir / FILENAME, document.getvalue())  # a CI step never sees half a file
