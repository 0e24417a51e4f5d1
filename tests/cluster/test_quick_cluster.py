"""The gate preset (--quick) on a healthy emulated cluster: it passes, and it measured what it says."""

import pytest

pytestmark = pytest.mark.cluster
STRAGGLER_CODES = ("straggler_rank", "straggler_node")


def test_quick_passes_a_healthy_cluster_and_measures_the_collectives_scores_and_links(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2, nics=("fast0",))
    run = cluster.torchrun(2, ["--quick", "--timeout", "120"], tmp_path, timeout=240)
    assert run.returncodes == {0: 0, 1: 0}, run.logs[0][-3000:]
    report = run.report
    findings = [(f["code"], f["severity"], f["nodes"]) for f in report["findings"]]
    assert not [f for f in findings if f[1] == "fail" or f[0] in STRAGGLER_CODES], findings
    measured = {(row["probe"], row["size_bytes"]) for row in report["results"]}
    sizes = {8, 256, 8192, 262144, 8388608}
    # 8 bytes is less than one float per rank for all_gather on 4 ranks: it starts at 256
    assert measured == {("all_reduce", size) for size in sizes} | {("all_gather", s) for s in sizes - {8}}
    assert all(row["iters"] == 10 for row in report["results"])
    stragglers = report["stragglers"]
    assert sorted(row["rank"] for row in stragglers["ranks"]) == [0, 1, 2, 3]
    pairs = stragglers["node_pairs"]
    assert pairs["nodes"] == [0, 1] and pairs["gbps"][0][1] > 0 and pairs["gbps"][1][0] > 0, pairs
    assert "ddp" not in report and "nic_sweep" not in report and "settings" not in report
    assert report["config"]["quick"] is True
