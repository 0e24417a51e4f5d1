"""junit.xml, read back with junitparser as CI servers read it: one case per check per node and
per probe; fail findings are failures carrying message, where and fix; counts add up."""

from pathlib import Path

from junitparser import Error, Failure, JUnitXml, Skipped

from nccldoctor.findings import Severity, make_finding
from nccldoctor.reports.json_report import load
from nccldoctor.reports.junit import JUnitSink

FIXTURE = Path(__file__).parent / "fixtures" / "gate" / "two_nodes.json"  # a real 2 x 2 emulated run
PROBES = ["all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "sendrecv"]


def two_nodes(*findings, **changes):
    report = load(FIXTURE)
    report.findings = list(findings)
    for name, value in changes.items():
        setattr(report, name, value)
    return report


def read(report, tmp_path):
    JUnitSink().emit(report, tmp_path)
    xml = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    cases = {(case.classname.removeprefix("nccldoctor."), case.name): case for suite in xml for case in suite}
    return xml, cases


def host(report, node):
    return f"node {node} ({report.job['nodes'][node]['hostname']})"


STRAGGLER = make_finding(
    "straggler_node",
    "node 1 is slow: 2 of its 2 rank(s) score below 0.90 (worst 0.40)",
    nodes=[1],
    ranks=[2, 3],
    severity=Severity.FAIL,
    evidence={"node": 1, "worst": 0.4},
    fix="on node 1: look for a CPU limit, or drain the node",
)
MTU = make_finding("mtu_mismatch", "fast0 has MTU 9000 on node 1, 1500 on node 0", nodes=[1])


def test_a_fail_finding_is_a_failure_on_its_nodes_case_with_message_where_and_fix(tmp_path):
    report = two_nodes(STRAGGLER, MTU)
    xml, cases = read(report, tmp_path)
    (failure,) = cases["health", host(report, 1)].result
    assert isinstance(failure, Failure) and failure.type == "straggler_node"
    assert failure.message == STRAGGLER.message
    assert f"at {host(report, 1)} / ranks 2,3" in failure.text and STRAGGLER.fix in failure.text
    assert '"worst": 0.4' in failure.text  # the evidence, summarised
    assert cases["health", host(report, 0)].is_passed
    warned = cases["network", host(report, 1)]
    assert warned.is_passed and MTU.message in warned.system_out  # a warning passes, said in the output
    assert [name for check, name in cases if check == "collectives"] == PROBES
    assert {check for check, _ in cases} == {"run", "network", "consistency", "health", "collectives"} | {
        "ddp",
        "nic_sweep",
    }
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (len(cases), 1, 0, 0)
    for suite in xml:
        assert suite.tests == len(list(suite)) and suite.failures == sum(not c.is_passed for c in suite)
    properties = {p.name: p.value for p in next(s for s in xml if s.name == "run").properties()}
    assert properties["verdict"] == "fail" and properties["exclude"] == report.job["nodes"][1]["hostname"]


def test_probe_findings_land_on_their_probe_and_skips_are_skipped(tmp_path):
    wrong = make_finding("wrong_data", "all_gather: 4 wrong elements", ranks=[1], nodes=[0])
    wrong.evidence["probe"] = "all_gather"
    skipped = make_finding("probe_skipped", "sendrecv needs 2 ranks", evidence={"probe": "sendrecv"})
    _, cases = read(two_nodes(wrong, skipped), tmp_path)
    (failure,) = cases["collectives", "all_gather"].result
    assert isinstance(failure, Failure) and failure.type == "wrong_data"
    assert cases["collectives", "all_reduce"].is_passed
    (skip,) = cases["collectives", "sendrecv"].result
    assert isinstance(skip, Skipped) and skip.message == "sendrecv needs 2 ranks"


def test_strict_makes_a_warning_a_failure(tmp_path):
    xml, cases = read(two_nodes(MTU, strict=True), tmp_path)
    (failure,) = cases["network", host(two_nodes(), 1)].result
    assert isinstance(failure, Failure) and failure.type == "mtu_mismatch" and xml.failures == 1


def test_an_incomplete_run_errors_on_the_checks_that_did_not_finish(tmp_path):
    crashed = make_finding("rank_crashed", "rank 3 failed in all_to_all 8M: killed", ranks=[3], nodes=[1])
    report = two_nodes(crashed, complete=False)
    report.results = [row for row in report.results if row.probe in PROBES[:4]]
    del report.sections["ddp"]
    xml, cases = read(report, tmp_path)
    errored = sorted(key for key, case in cases.items() if case.result and isinstance(case.result[0], Error))
    assert errored == [
        ("collectives", "all_to_all"),
        ("collectives", "sendrecv"),
        ("ddp", "job"),
        ("run", "job"),
    ]
    (error,) = cases["run", "job"].result
    assert error.message == crashed.message and error.type == "rank_crashed"
    assert cases["collectives", "all_reduce"].is_passed and xml.errors == 4 and xml.failures == 0


def test_control_characters_in_a_message_still_make_valid_xml(tmp_path):
    colored = make_finding("iface_down", "\x1b[31meth0\x1b[0m is down", nodes=[0])
    _, cases = read(two_nodes(colored), tmp_path)
    (failure,) = cases["network", host(two_nodes(), 0)].result
    assert failure.message == "?[31meth0?[0m is down"
