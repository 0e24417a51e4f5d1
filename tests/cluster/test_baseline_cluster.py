"""--baseline across two emulated nodes: traffic moved to a shaped NIC is a `regression` that
fails and names all_reduce; the same healthy run again against the same baseline is none."""

import pytest

# heavy: out of CI's 20 minutes (report.html's browser test came in); the judgement itself is
# tested on real cluster runs' reports (tests/test_baseline.py, tests/test_compare.py).
pytestmark = [pytest.mark.cluster, pytest.mark.heavy]
FAST = ["--probes", "all_reduce,all_gather", "--no-ddp", "--health", "off", "-e", "4M", "--ifaces", "off"]
FAST += ["--timeout", "120", "--no-html", "-n", "10", "-w", "2"]  # --quick's iterations: a gate's


def test_a_run_on_the_slow_nic_fails_against_the_fast_baseline_and_a_fast_rerun_passes(
    make_cluster, tmp_path
):
    cluster = make_cluster(nodes=2, nics=("fast0", "slow0"))  # hostnames resolve to fast0
    cluster.shape("slow0", mbit=200)
    base = cluster.torchrun(2, FAST, tmp_path / "base")
    assert base.returncodes == {0: 0, 1: 0}, base.logs[0][-3000:]
    gate = [*FAST, "--baseline", str(tmp_path / "base")]

    slow = cluster.torchrun(2, gate, tmp_path / "slow", env={"GLOO_SOCKET_IFNAME": "slow0"})
    assert slow.report["exit_code"] == 1 and slow.returncodes == {0: 1, 1: 1}, slow.logs[0][-3000:]
    failed = {f["evidence"]["probe"]: f for f in slow.findings("regression") if f["severity"] == "fail"}
    assert failed["all_reduce"]["message"].startswith("all_reduce peak busbw at ")
    evidence = failed["all_reduce"]["evidence"]
    assert evidence["value"] < 200e6 / 8 / 1e9 * 1.05 < evidence["baseline_value"]  # within 200 Mbit/s
    assert evidence["slowdown"] > 1 + evidence["noise"]
    assert slow.report["baseline"]["comparable"] and slow.report["baseline"]["path"] == str(tmp_path / "base")
    # the bed itself: Gloo pinned to the shaped NIC is measurably slower than on the fast one
    assert largest_all_reduce_gbps(slow.report) < 0.35 * largest_all_reduce_gbps(base.report)

    again = cluster.torchrun(2, gate, tmp_path / "again")
    assert again.returncodes == {0: 0, 1: 0}, again.logs[0][-3000:]
    assert again.findings("regression") == [] and again.report["baseline"]["comparable"]


def largest_all_reduce_gbps(report: dict) -> float:
    rows = [r for r in report["results"] if r["probe"] == "all_reduce"]
    return max(rows, key=lambda r: r["size_bytes"])["busbw_gbps"]
