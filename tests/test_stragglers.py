"""Straggler scores and findings: which rank, which node, which severity (pure logic)."""

import pytest

from nccldoctor.findings import Severity
from nccldoctor.nodepairs import matrix_seconds, node_pairs_section
from nccldoctor.probes.health import _faster
from nccldoctor.probes.health.compute import ComputePlan, RankCompute
from nccldoctor.probes.health.stragglers import (
    ScoreThresholds,
    copies_note,
    crowded_nodes,
    judge_stragglers,
    rank_rows,
    score_ranks,
    scored_kernels,
)

T = ScoreThresholds()


def compute(slowdown=1.0, copy=1.0, h2d=None, bound=None, numa_node=None):
    return RankCompute(
        matmul_s=0.1 * slowdown,
        copy_s=0.05 * copy,
        h2d_s=h2d,
        d2h_s=None,
        step_compute_s=0.025 * slowdown,
        step_best_s=0.02 * slowdown,
        step_wait_s=0.01,
        gpu_numa_node=numa_node,
        copy_numa_bound=bound,
    )


def judge(computes, node_of, thresholds=T, hostnames=None):
    verdicts = score_ranks(computes, node_of)
    return judge_stragglers(verdicts, computes, thresholds, hostnames or {})


def test_one_slow_rank_among_eight_is_a_straggler_rank_and_the_median_does_not_move():
    computes = [compute() for _ in range(8)]
    computes[5] = compute(slowdown=2.0)
    verdicts = score_ranks(computes, [r // 4 for r in range(8)])
    assert all(v.score == pytest.approx(1.0) for v in verdicts if v.rank != 5)
    (finding,) = judge_stragglers(verdicts, computes, T, {1: "gpu-17"})
    assert (finding.code, finding.ranks, finding.nodes) == ("straggler_rank", [5], [1])
    assert finding.severity == Severity.FAIL  # matmul and step at 0.5, copy at 1.0: 1 / mean(2, 1, 2)
    assert finding.evidence["score"] == pytest.approx(0.6)
    assert "node 1 (gpu-17)" in finding.message and "the matmul" in finding.message
    assert finding.evidence["median_seconds"]["matmul_s"] == pytest.approx(0.1)


def test_a_node_with_most_ranks_slow_is_named_once_as_the_node():
    computes = [compute() for _ in range(8)]
    for rank in (4, 5, 6):  # three of node 1's four ranks
        computes[rank] = compute(slowdown=1.2)
    findings = judge(computes, [r // 4 for r in range(8)])
    (finding,) = findings
    assert (finding.code, finding.nodes, finding.ranks) == ("straggler_node", [1], [4, 5, 6])
    assert finding.severity == Severity.WARN  # 1 / mean(1.2, 1, 1.2) = 0.88: below 0.9, above 0.75
    assert len(finding.evidence["ranks"]) == 4  # every rank of the node, slow or not


def test_half_a_node_slow_is_two_ranks_not_the_node():
    computes = [compute() for _ in range(8)]
    computes[0] = computes[1] = compute(slowdown=2.0)
    findings = judge(computes, [r // 4 for r in range(8)])
    assert [(f.code, f.ranks) for f in findings] == [("straggler_rank", [0]), ("straggler_rank", [1])]


def test_a_single_rank_node_that_is_slow_is_the_node():
    computes = [compute(), compute(slowdown=5.0), compute()]
    (finding,) = judge(computes, [0, 1, 2])
    assert (finding.code, finding.nodes, finding.severity) == ("straggler_node", [1], Severity.FAIL)


def test_noise_below_the_thresholds_and_a_lone_rank_give_nothing():
    computes = [compute(slowdown=s) for s in (1.0, 1.05, 0.97, 1.08)]
    assert judge(computes, [0, 0, 1, 1]) == []
    assert judge([compute(slowdown=9.0)], [0]) == []  # nothing to compare with


def test_thresholds_are_configurable_and_checked():
    computes = [compute(), compute(), compute(slowdown=1.1)]
    assert judge(computes, [0, 0, 0]) == []  # 1 / mean(1.1, 1, 1.1) = 0.94
    (finding,) = judge(computes, [0, 0, 0], ScoreThresholds(warn=0.95, fail=0.9))
    assert finding.severity == Severity.WARN
    with pytest.raises(ValueError):
        ScoreThresholds(warn=0.7, fail=0.8)


def test_a_slow_host_to_device_copy_alone_is_named_with_a_pcie_fix():
    computes = [compute(h2d=0.01, bound=True), compute(h2d=0.01, bound=True), compute(h2d=0.04, bound=True)]
    (finding,) = judge(computes, [0, 0, 0])
    assert finding.ranks == [2] and "host-to-device" in finding.message
    assert "PCIe" in finding.fix
    assert copies_note(computes) is None  # every copy counted


def test_a_bound_rank_with_twice_as_slow_copies_is_named():
    computes = [compute(h2d=0.01, bound=True, numa_node=n) for n in (0, 1, 0, 1)]
    computes[3] = compute(h2d=0.02, bound=True, numa_node=1)
    (finding,) = judge(computes, [0, 0, 1, 1])
    assert (finding.code, finding.ranks) == ("straggler_rank", [3])  # 1 / mean(1, 1, 1, 2) = 0.8
    assert "host-to-device" in finding.message
    assert finding.evidence["median_seconds"]["h2d_s"] == pytest.approx(0.01)


def test_an_unbound_rank_with_twice_as_slow_copies_is_shown_not_named():
    # Rank 3's CPUs are not all on its GPU's NUMA node: its copy may cross the sockets.
    computes = [compute(h2d=0.01, bound=True, numa_node=n) for n in (0, 1, 0, 1)]
    computes[3] = compute(h2d=0.02, bound=False, numa_node=1)
    assert judge(computes, [0, 0, 1, 1]) == []
    verdicts = score_ranks(computes, [0, 0, 1, 1])
    assert "h2d_s" not in verdicts[3].kernel_scores and "h2d_s" in verdicts[0].kernel_scores
    plan = ComputePlan(
        matmul_n=100, matmul_repeats=10, copy_bytes=1000, copy_repeats=5, host_device_bytes=1 << 20
    )
    row = next(r for r in rank_rows(verdicts, computes, plan, None, {}) if r["rank"] == 3)
    assert row["h2d_gbps"] == pytest.approx((1 << 20) / 0.02 / 1e9)  # shown
    assert (row["gpu_numa_node"], row["copy_numa_bound"]) == (1, False)
    assert "rank 3 not" in copies_note(computes)


@pytest.mark.parametrize("bound", [[False, False, False], [None, None, None], [True, False, None]])
def test_copies_are_not_scored_without_two_bound_ranks_to_compare(bound):
    computes = [compute(h2d=h2d, bound=b) for h2d, b in zip((0.01, 0.01, 0.04), bound, strict=True)]
    assert judge(computes, [0, 0, 0]) == []
    assert all("h2d_s" not in v.kernel_scores for v in score_ranks(computes, [0, 0, 0]))
    assert "ranks 0, 1, 2 not" in copies_note(computes)


def test_without_copies_there_is_nothing_to_say_about_them():
    assert copies_note([compute(), compute()]) is None  # a CPU: no host<->device copies


def test_rows_are_slowest_first_with_rates():
    computes = [compute(), compute(slowdown=2.0)]
    plan = ComputePlan(
        matmul_n=100, matmul_repeats=10, copy_bytes=1000, copy_repeats=5, host_device_bytes=None
    )
    rows = rank_rows(score_ranks(computes, [0, 1]), computes, plan, [1.0, 2.0], {0: "a", 1: "b"})
    assert [r["rank"] for r in rows] == [1, 0]
    assert rows[1]["tflops"] == pytest.approx(2 * 100**3 * 10 / 0.1 / 1e12)
    assert rows[1]["copy_gbps"] == pytest.approx(2 * 1000 * 5 / 0.05 / 1e9)  # read + write
    assert rows[0]["host"] == "b" and rows[0]["ring_in_gbps"] == 2.0 and rows[0]["h2d_gbps"] is None


def test_a_second_look_keeps_each_kernels_better_time():
    first, second = compute(slowdown=3.0, bound=True, numa_node=1), compute(copy=2.0)
    best = _faster(first, second)
    assert (best.matmul_s, best.copy_s, best.h2d_s) == (0.1, 0.05, None)
    assert (best.gpu_numa_node, best.copy_numa_bound) == (1, True)  # placement is not measured


def test_the_matrix_is_directional_gbps_without_the_diagonal():
    matrix = node_pairs_section(matrix_seconds([[0.0, 0.002], [0.004, 0.0]]), [0, 1], 4_000_000)
    assert matrix["gbps"] == [[None, 2.0], [1.0, None]]
    assert node_pairs_section(matrix_seconds([[0.0]]), [0], 4_000_000)["gbps"] == []


def test_on_a_cpu_the_shared_memory_bus_copy_is_shown_not_scored():
    computes = [compute(), compute(), compute(copy=2.0)]
    verdicts = score_ranks(computes, [0, 0, 0], scored_kernels("cpu"))
    assert judge_stragglers(verdicts, computes, T, {}) == []
    assert set(verdicts[2].kernel_scores) == {"step_best_s"}
    (finding,) = judge(computes, [0, 0, 0])  # on a GPU the copy counts
    assert finding.ranks == [2] and "memory copy" in finding.message


def test_ranks_of_a_node_with_more_ranks_than_cores_are_not_judged_one_against_another():
    computes = [compute(), compute(slowdown=1.2), compute(), compute(), compute(slowdown=2.0), compute()]
    node_of = [0, 0, 0, 1, 1, 1]
    crowded = crowded_nodes(node_of, {0: 2, 1: 8})
    assert crowded == {0: "3 ranks share 2 CPU cores"}
    findings = judge_stragglers(score_ranks(computes, node_of), computes, T, {}, crowded)
    assert [(f.code, f.nodes, f.ranks) for f in findings] == [
        ("straggler_rank", [1], [4]),  # node 1 has a core per rank: still judged
        ("probe_skipped", [0], []),
    ]
    assert "3 ranks share 2 CPU cores" in findings[1].message


def cpu_step(best_ms: float, mean_ms: float) -> RankCompute:
    return RankCompute(
        matmul_s=0.1,
        copy_s=0.05,
        h2d_s=None,
        d2h_s=None,
        step_compute_s=mean_ms / 1e3,
        step_best_s=best_ms / 1e3,
        step_wait_s=0.01,
    )


def test_on_a_cpu_a_rank_whose_best_step_is_inside_the_others_typical_step_is_not_slow():
    # Three ranks on shared cores: rank 0's best step (36 ms) scores 0.83 against the others'
    # best (30 ms), but the median rank's steps take 38 ms on average: noise, not a straggler.
    computes = [cpu_step(36, 41.5), cpu_step(30, 35.4), cpu_step(30, 38.2)]
    verdicts = score_ranks(computes, [0, 1, 2], scored_kernels("cpu"))
    assert verdicts[0].score < T.warn
    assert judge_stragglers(verdicts, computes, T, {}) == []
    plan = ComputePlan(
        matmul_n=100, matmul_repeats=10, copy_bytes=1000, copy_repeats=5, host_device_bytes=None
    )
    rows = rank_rows(verdicts, computes, plan, None, {})
    assert [(row["rank"], row["within_noise"]) for row in rows] == [(0, True), (1, False), (2, False)]


def test_on_a_cpu_a_rank_slower_at_its_best_than_the_others_on_average_is_still_named():
    computes = [cpu_step(45, 50), cpu_step(30, 35.4), cpu_step(30, 38.2)]
    verdicts = score_ranks(computes, [0, 1, 2], scored_kernels("cpu"))
    (finding,) = judge_stragglers(verdicts, computes, T, {})
    assert finding.code == "straggler_node" and finding.nodes == [0] and finding.severity is Severity.FAIL


def test_the_noise_rule_is_only_for_the_step_alone_a_gpu_rank_slow_in_matmul_is_named():
    computes = [compute() for _ in range(3)]
    computes[0] = RankCompute(**{**computes[0].__dict__, "matmul_s": 0.15, "step_best_s": 0.02})
    verdicts = score_ranks(computes, [0, 1, 2])
    assert [f.ranks for f in judge_stragglers(verdicts, computes, T, {})] == [[0]]


def test_the_rank_table_marks_copies_shown_but_not_scored():
    from types import SimpleNamespace

    from nccldoctor.reports.sections.health import rank_table

    computes = [compute(h2d=0.01, bound=True), compute(h2d=0.01, bound=True), compute(h2d=0.02, bound=False)]
    plan = ComputePlan(
        matmul_n=100, matmul_repeats=10, copy_bytes=1000, copy_repeats=5, host_device_bytes=1 << 20
    )
    rows = rank_rows(score_ranks(computes, [0, 0, 0]), computes, plan, None, {})
    title, frame = rank_table(SimpleNamespace(sections={"stragglers": {"ranks": rows}}))
    cells = dict(zip(frame["rank"], frame["H2D GB/s"], strict=True))
    assert cells[2].endswith("*") and not cells[0].endswith("*")
    assert "not bound to the GPU's NUMA node" in title
    for row in rows:
        row["copy_numa_bound"], row["kernel_scores"]["h2d_s"] = True, 1.0
    title, frame = rank_table(SimpleNamespace(sections={"stragglers": {"ranks": rows}}))
    assert "NUMA" not in title and not any(cell.endswith("*") for cell in frame["H2D GB/s"])


def test_a_second_look_on_a_cpu_pins_each_rank_to_another_core_and_restores_it():
    import os

    import torch

    from nccldoctor.probes.health import rotated_core

    before = os.sched_getaffinity(0)
    allowed = sorted(before)
    if len(allowed) < 2:
        pytest.skip("needs 2 allowed cores")
    with rotated_core(torch.device("cpu"), local_rank=0, look=2):
        assert os.sched_getaffinity(0) == {allowed[1]}  # rank 0 moves off the first core
    with rotated_core(torch.device("cpu"), local_rank=1, look=2):
        assert os.sched_getaffinity(0) == {allowed[2 % len(allowed)]}
    assert os.sched_getaffinity(0) == before
    with rotated_core(torch.device("cpu"), local_rank=0, look=2, skip=True):  # a crowded node
        assert os.sched_getaffinity(0) == before
    with rotated_core(torch.device("cuda", 0), local_rank=0, look=2):  # a GPU is the rank's own
        assert os.sched_getaffinity(0) == before
