"""Stragglers, slow links and host contention across three emulated nodes: each test asserts
which node is named, and that no other node is."""

import sys

import pytest
from junitparser import Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from nccldoctor.gate.hostlist import expand
from nccldoctor.reports.figures.canvas import FAIL

pytestmark = pytest.mark.cluster
QUICK = ["-e", "64K", "-n", "3", "-w", "1", "--probes", "all_reduce", "--ifaces", "off", "--timeout", "120"]
QUICK += ["--no-ddp"]  # DDP has tests of its own
NO_HTML = [*QUICK, "--no-html"]  # the first test checks report.html; the others need not pay for it
HEALTH_CODES = ("straggler_rank", "straggler_node", "slow_link", "host_contention")
# Four spinning processes: the ranks keep the 2 shared cores busy too, so two alone got only
# about half a core together in one CI run, right at the 0.5-core limit.
BURNER = "import os, time\nos.fork()\nos.fork()\nwhile True:\n    time.perf_counter()\n"


def nodes_named(run, code):
    return sorted(node for finding in run.findings(code) for node in finding["nodes"])


def test_a_node_with_a_fifth_of_a_core_is_the_one_straggler_node_and_the_one_host_to_exclude(
    make_cluster, tmp_path
):
    cluster = make_cluster(nodes=3, nics=("fast0",))
    # A fifth of a core, in 2 ms slices: on a busy machine the straggler probe's steps shrink to
    # a few ms, and with the default 100 ms period (20 ms of quota) its fastest step ran at full
    # speed and node 1 scored 1.0.
    cluster.cpu_quota(node=1, cores=0.2, period_us=10_000)
    run = cluster.torchrun(1, QUICK, tmp_path, timeout=240)
    said = [(f["code"], f["severity"], f["nodes"], f["message"]) for f in run.report["findings"]]
    assert len(run.findings("straggler_node")) == 1, (said, run.logs[0][-2000:])
    (finding,) = run.findings("straggler_node")
    assert finding["nodes"] == [1] and finding["ranks"] == [1], finding
    assert finding["severity"] == "fail"  # far below the 0.75 fail score
    assert run.findings("straggler_rank") == []
    # Its links may be slow too (Gloo moves data on the CPU): then a note on the same node, not a
    # second failure that sends the user to the cable.
    assert all(f["severity"] == "info" and f["nodes"] == [1] for f in run.findings("slow_link"))
    scores = {row["rank"]: row["score"] for row in run.report["stragglers"]["ranks"]}
    assert scores[1] < 0.5 and min(scores[0], scores[2]) > 0.9, scores
    assert run.report["stragglers"]["ranks"][0]["rank"] == 1  # the table starts with the slowest
    # The same run's gate outputs (one launch serves both: a throttled node's run is the slowest)
    assert_gate_outputs_name_only(run, finding, node=1, others=(0, 2))


def assert_gate_outputs_name_only(run, finding, node, others):
    """exclude.txt and report.json's exclude hold the node's host alone; its health case fails in
    junit.xml with the finding's message and fix; nccldoctor.prom parses with its low score."""
    out, report = run.out_dir, run.report
    hosts = {n["node_rank"]: n["hostname"] for n in report["job"]["nodes"]}
    assert (out / "exclude.txt").read_text() == f"{hosts[node]}\n"
    exclude = report["exclude"]
    assert exclude["hosts"] == [hosts[node]] and expand(exclude["slurm"]) == [hosts[node]]
    assert [r["code"] for r in exclude["reasons"][hosts[node]]] == [finding["code"]]

    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    cases = {(case.classname, case.name): case for suite in xml for case in suite}
    (failure,) = cases["nccldoctor.health", f"node {node} ({hosts[node]})"].result
    assert isinstance(failure, Failure) and failure.message == finding["message"]
    assert failure.type == finding["code"] and finding["fix"] in failure.text
    for other in others:
        assert cases["nccldoctor.health", f"node {other} ({hosts[other]})"].is_passed
    assert cases["nccldoctor.collectives", "all_reduce"].is_passed

    prom = (out / "nccldoctor.prom").read_text()
    metrics = {family.name: family.samples for family in text_string_to_metric_families(prom)}
    score = {s.labels["host"]: s.value for s in metrics["nccldoctor_node_compute_score"]}
    assert score[hosts[node]] < 0.5 < min(score[hosts[other]] for other in others), score
    verdict = {s.labels["verdict"]: s.value for s in metrics["nccldoctor_verdict"]}
    assert verdict["fail"] == 1 and verdict["pass"] == 0
    codes = {(s.labels["code"], s.labels["severity"]): s.value for s in metrics["nccldoctor_findings"]}
    assert codes[(finding["code"], "fail")] == 1
    assert any(s.labels["probe"] == "all_reduce" for s in metrics["nccldoctor_busbw_bytes_per_second"])

    # report.html: the finding's card, the host to exclude, and the node's rank in red in the scores
    page = (out / "report.html").read_text()
    assert f"{finding['code']}</code>" in page and f"{hosts[node]}</pre>" in page
    scores = page.split('id="fig-scores">')[1].split("</figure>")[0]
    assert FAIL in scores and 'class="not-drawn"' not in page


def test_a_node_link_shaped_ten_times_slower_is_named_by_slow_link(make_cluster, tmp_path):
    cluster = make_cluster(nodes=3, nics=("fast0",))
    cluster.shape("fast0", mbit=200, nodes=[1])
    run = cluster.torchrun(1, NO_HTML, tmp_path, timeout=240)
    (finding,) = run.findings("slow_link")
    assert finding["nodes"] == [1], finding
    slow = finding["evidence"]["slow_links"]
    assert all(1 in (link["from_node"], link["to_node"]) for link in slow)
    matrix = run.report["stragglers"]["node_pairs"]["gbps"]
    healthy = min(matrix[0][2], matrix[2][0])
    assert max(matrix[0][1], matrix[1][0], matrix[1][2], matrix[2][1]) < healthy / 5, matrix
    assert nodes_named(run, "straggler_node") == [] and run.findings("straggler_rank") == []


def test_a_cpu_burner_inside_one_node_is_host_contention_on_that_node(make_cluster, tmp_path):
    cluster = make_cluster(nodes=3, nics=("fast0",))
    # In node 2's PID space, next to its torchrun: only node 2's tools can see it.
    run = cluster.torchrun(1, NO_HTML, tmp_path, timeout=240, beside={2: [sys.executable, "-c", BURNER]})
    hosts = (run.report.get("health") or {}).get("hosts")
    busy = [f for f in run.findings("host_contention") if "cpu" in f["evidence"]["reasons"]]
    assert len(busy) == 1, hosts  # on failure, show what was sampled
    (finding,) = busy
    assert finding["nodes"] == [2], finding
    assert finding["evidence"]["reasons"] == ["cpu"]
    # The emulated nodes share the machine's cores, so the burner crowds the others' ranks too:
    # a rank it slowed is reported as oversubscription on its node, never as a straggler.
    others = [f for f in run.findings("host_contention") if f not in busy]
    assert all(f["evidence"]["reasons"] == ["oversubscribed"] for f in others), others
    assert run.findings("straggler_rank") == run.findings("straggler_node") == []
    assert finding["evidence"]["foreign_cores"] > 0.5
    assert all(p["name"].startswith("python") for p in finding["evidence"]["top_processes"][:2])
    assert [row["status"] for row in run.report["health"]["hosts"]][2] == "cpu"


@pytest.mark.parametrize("attempt", [1, 2])
def test_a_healthy_three_node_run_names_no_straggler_link_or_busy_host(make_cluster, tmp_path, attempt):
    cluster = make_cluster(nodes=3, nics=("fast0",))
    run = cluster.torchrun(1, NO_HTML, tmp_path)
    assert run.returncodes == {0: 0, 1: 0, 2: 0}, run.logs[0][-3000:]
    assert [f["code"] for f in run.report["findings"] if f["code"] in HEALTH_CODES] == []
    assert len(run.report["stragglers"]["ranks"]) == 3
    assert len(run.report["health"]["hosts"]) == 3
