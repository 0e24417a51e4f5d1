"""The gate's outputs on a real run: a node throttled to a fifth of a core is the one host in
exclude.txt and report.json's exclude, its health case fails in junit.xml, and nccldoctor.prom
parses with its low score. One torchrun launch on three emulated nodes."""

import pytest
from junitparser import Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from nccldoctor.gate.hostlist import expand

pytestmark = pytest.mark.cluster
QUICK = ["-e", "64K", "-n", "3", "-w", "1", "--probes", "all_reduce", "--ifaces", "off", "--timeout", "120"]
QUICK += ["--no-ddp"]


def samples(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_a_throttled_node_is_the_one_host_to_exclude_and_fails_its_junit_case(make_cluster, tmp_path):
    cluster = make_cluster(nodes=3, nics=("fast0",))
    # A fifth of a core, in 2 ms slices: on a busy machine the straggler probe's steps shrink to
    # a few ms, and with the default 100 ms period (20 ms of quota) its fastest step ran at full
    # speed and node 1 scored 1.0.
    cluster.cpu_quota(node=1, cores=0.2, period_us=10_000)
    run = cluster.torchrun(1, QUICK, tmp_path, timeout=240)
    report = run.report
    hosts = {node["node_rank"]: node["hostname"] for node in report["job"]["nodes"]}
    said = [(f["code"], f["severity"], f["nodes"], f["message"]) for f in report["findings"]]
    assert len(run.findings("straggler_node")) == 1, (said, run.logs[0][-2000:])
    (finding,) = run.findings("straggler_node")
    assert finding["nodes"] == [1] and finding["severity"] == "fail", finding

    assert (tmp_path / "exclude.txt").read_text() == f"{hosts[1]}\n"
    exclude = report["exclude"]
    assert exclude["hosts"] == [hosts[1]] and expand(exclude["slurm"]) == [hosts[1]]
    assert [r["code"] for r in exclude["reasons"][hosts[1]]] == ["straggler_node"]

    xml = JUnitXml.fromfile(str(tmp_path / "junit.xml"))
    cases = {(case.classname, case.name): case for suite in xml for case in suite}
    failed = cases["nccldoctor.health", f"node 1 ({hosts[1]})"]
    (failure,) = failed.result
    assert isinstance(failure, Failure) and failure.message == finding["message"]
    assert failure.type == "straggler_node" and finding["fix"] in failure.text
    for node in (0, 2):
        assert cases["nccldoctor.health", f"node {node} ({hosts[node]})"].is_passed
    assert cases["nccldoctor.collectives", "all_reduce"].is_passed

    metrics = samples((tmp_path / "nccldoctor.prom").read_text())
    score = {s.labels["host"]: s.value for s in metrics["nccldoctor_node_compute_score"]}
    assert score[hosts[1]] < 0.5 < min(score[hosts[0]], score[hosts[2]]), score
    verdict = {s.labels["verdict"]: s.value for s in metrics["nccldoctor_verdict"]}
    assert verdict["fail"] == 1 and verdict["pass"] == 0
    codes = {(s.labels["code"], s.labels["severity"]): s.value for s in metrics["nccldoctor_findings"]}
    assert codes[("straggler_node", "fail")] == 1
    assert any(s.labels["probe"] == "all_reduce" for s in metrics["nccldoctor_busbw_bytes_per_second"])
