"""--expect on the emulated cluster: a bar above what a shaped link can carry is `low_bandwidth`
citing the rule's key and line, and every node's torchrun exits 1 (one torchrun launch)."""

import pytest

pytestmark = pytest.mark.cluster
QUICK = ["-e", "4M", "-n", "3", "-w", "1"]
QUICK += ["--probes", "all_reduce", "--no-ddp", "--health", "off", "--no-html"]
QUICK += ["--ifaces", "off", "--timeout", "120"]
# 200 Mbit/s is 0.025 GB/s on the wire: all_reduce cannot reach 0.1 GB/s busbw through it, and
# the same 2 x 2 cluster unshaped reached 0.5-0.7 GB/s at 4M-8M, so only the shaping misses it.
EXPECT = """\
description = "emulated 2-node cluster, fast0 shaped to 200 Mbit/s"

[job]
nodes = 2

[probes.all_reduce]
min_busbw_gbps = 0.1

[ddp]
min_tokens_per_s = 1000
"""


def test_a_bar_above_the_shaped_link_is_low_bandwidth_citing_the_rule(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2, nics=("fast0",))
    cluster.shape("fast0", mbit=200)
    expect = tmp_path / "expect.toml"
    expect.write_text(EXPECT)
    run = cluster.torchrun(2, [*QUICK, "--expect", str(expect)], tmp_path / "out", timeout=240)
    (finding,) = run.findings("low_bandwidth")
    assert finding["severity"] == "fail" and finding["nodes"] == [], finding
    rule = finding["evidence"]["rule"]
    assert rule == {"file": str(expect), "key": "probes.all_reduce.min_busbw_gbps", "line": 7, "bound": 0.1}
    assert finding["evidence"]["measured"] < 0.05
    assert finding["evidence"]["size_bytes"] == 2 << 20  # 8 x 4^k up to -e 4M
    assert finding["message"].endswith("(expect.toml:7 probes.all_reduce.min_busbw_gbps)")
    rules = {r["key"]: r["ok"] for r in run.report["expectations"]["rules"]}
    expected = {"job.nodes": True, "probes.all_reduce.min_busbw_gbps": False, "ddp.min_tokens_per_s": None}
    assert rules == expected
    (unchecked,) = run.findings("expectation_not_checked")
    assert [r["key"] for r in unchecked["evidence"]["rules"]] == ["ddp.min_tokens_per_s"]
    assert run.report["verdict"] == "fail" and run.report["exit_code"] == 1
    assert run.returncodes == {0: 1, 1: 1}, run.logs[0][-3000:]
