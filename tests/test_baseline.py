"""The baseline comparison (nccldoctor.gate): a change counts only beyond both runs' own noise.

Synthetic curves (helpers/baseline_reports.py) carry exactly the noise each test gives them;
the real pairs of 2-node runs in fixtures/baseline/ check the rule on this machine's noise.
"""

from dataclasses import replace
from pathlib import Path

import pytest
from helpers.baseline_reports import curve, even_scores, report, row

from nccldoctor.config import GateOptions
from nccldoctor.gate import file_problem, review
from nccldoctor.gate.bar import Bar
from nccldoctor.gate.baseline import compare, findings
from nccldoctor.gate.deltas import blame
from nccldoctor.reports.json_report import load
from nccldoctor.reports.sections import section_tables

FIXTURES = Path(__file__).parent / "fixtures" / "baseline"
BAR = Bar()


def judged(comparison, metric, subject=None):
    (delta,) = [
        d for d in comparison.deltas if d.judged and d.metric == metric and subject in (None, d.subject)
    ]
    return delta


def regressions(old, new, bar=BAR):
    return [f for f in findings(compare(old, new, bar), "base/report.json") if f.code == "regression"]


# -- collectives: the noise and the two thresholds ---------------------------------------------
def test_a_busbw_drop_within_the_ranks_spread_is_not_a_regression():
    # Each run's ranks differ by 30% on every row: a 20% lower busbw (1.25x) is inside that.
    old = report(curve(gbps=10, spread=0.3))
    new = report(curve(gbps=8, spread=0.3))
    comparison = compare(old, new, BAR)
    busbw = judged(comparison, "busbw")
    assert busbw.status == "same" and busbw.worse == pytest.approx(0.2, abs=0.01)
    assert busbw.noise == pytest.approx(1.3 * 1.3 - 1)  # both runs' noise: a ratio of two noisy values
    assert regressions(old, new) == []


def test_a_drop_beyond_the_noise_but_within_the_fail_percentage_warns():
    old, new = report(curve(gbps=10)), report(curve(gbps=8.8))  # ranks within 2%: noise ~4%
    (finding,) = regressions(old, new)
    assert finding.severity.value == "warn"
    assert finding.message.startswith("all_reduce peak busbw at 8M fell 12% from the baseline")
    assert finding.evidence["worse_pct"] == pytest.approx(12, abs=0.5)
    assert finding.nodes == [] and finding.ranks == []  # job-wide: no node to drain


def test_a_drop_beyond_the_fail_percentage_fails_and_cites_both_values_and_the_bars():
    old, new = report(curve(gbps=10)), report(curve(gbps=4))
    (finding,) = regressions(old, new)
    assert finding.severity.value == "fail"
    assert "all_reduce peak busbw at 8M fell 60% from the baseline (9.87 -> 3.98 GB/s)" in finding.message
    assert "every size 128K-8M" in finding.message  # the bandwidth sizes, all slower
    evidence = finding.evidence
    assert evidence["baseline_value"] == pytest.approx(9.87, abs=0.01)
    assert evidence["value"] == pytest.approx(3.98, abs=0.01)
    assert evidence["sizes"] == [131072, 524288, 2097152, 8388608]
    assert evidence["fail_pct"] == 20.0 and evidence["noise_factor"] == 1.0
    assert 0 < evidence["noise"] < 0.05 and evidence["baseline"] == "base/report.json"


def test_the_fail_percentage_and_the_noise_factor_are_the_flags_values():
    old, new = report(curve(gbps=10)), report(curve(gbps=8.8))
    assert [f.severity.value for f in regressions(old, new, Bar(fail_pct=10))] == ["fail"]
    # Noise ~4% x 4 = 16%: a 12% drop (1.14x slower) is inside it.
    assert regressions(old, new, Bar(noise_factor=4)) == []


def test_one_bandwidth_size_that_moved_the_other_way_is_not_a_trend():
    old = report(curve(gbps=10))
    rows = curve(gbps=8.8)
    rows = [r if r.size_bytes != 2097152 else row("all_reduce", 2097152, 380.0) for r in rows]  # faster there
    comparison = compare(old, report(rows), BAR)
    assert judged(comparison, "busbw").status == "same"
    at_8m = [d for d in comparison.deltas if d.metric == "busbw" and d.size_bytes == 8388608 and not d.judged]
    assert at_8m[0].status == "worse"  # the other sizes did fall


def test_the_settings_sweeps_rounds_are_noise_too():
    rounds = [
        r.labelled(sweep="settings", setting="defaults", repeat=k, time_us=r.time_us * (1 + 0.6 * k))
        for r in curve(gbps=10)
        for k in range(2)
    ]
    old = report(curve(gbps=10) + rounds)  # the same rows measured 60% apart in the sweep
    assert regressions(old, report(curve(gbps=7))) == []
    assert [f.severity.value for f in regressions(report(curve(gbps=10)), report(curve(gbps=7)))] == ["fail"]


def test_a_curve_that_goes_backwards_shows_the_runs_noise():
    rows = curve(gbps=10)
    slow_2m = row("all_reduce", 2097152, rows[9].time_us * 2)  # 2M twice as slow as the curve says
    old = report([slow_2m if r.size_bytes == 2097152 else r for r in rows])
    comparison = compare(old, report(curve(gbps=8)), BAR)
    assert judged(comparison, "busbw").noise > 0.7  # 512K's busbw was 1.7x 2M's
    assert judged(comparison, "busbw").status == "same"


def test_latency_is_judged_on_the_smallest_sizes():
    old, new = report(curve(latency_us=20)), report(curve(latency_us=45))
    comparison = compare(old, new, BAR)
    latency = judged(comparison, "latency")
    assert latency.sizes == [8, 32, 128] and latency.status == "fail"
    (finding,) = regressions(old, new)
    assert (
        "all_reduce latency (lowest time) at 8 rose 125% from the baseline (20 -> 45 us)" in finding.message
    )
    assert judged(comparison, "busbw").status == "same"  # 8M moved by 3%: inside 4% noise


def test_improvements_are_better_in_the_deltas_and_never_findings():
    old, new = report(curve(gbps=5, latency_us=40)), report(curve(gbps=10, latency_us=20))
    comparison = compare(old, new, BAR)
    assert judged(comparison, "busbw").status == "better"
    assert judged(comparison, "latency").status == "better"
    assert findings(comparison, "base") == []


def test_every_size_and_mode_is_a_detail_with_busbw_and_time():
    old = report(curve("all_gather", modes=(False, True), gbps=10))
    new = report(curve("all_gather", modes=(False, True), gbps=5))
    details = [d for d in compare(old, new, BAR).deltas if not d.judged]
    assert len(details) == 2 * 2 * 11  # busbw and time, 2 modes, 11 sizes
    big = [d for d in details if d.size_bytes == 8388608 and not d.inplace]
    assert {d.metric: d.status for d in big} == {"busbw": "worse", "time": "worse"}
    assert all(d.status == "same" for d in details if d.size_bytes == 8)  # latency did not move


# -- not comparable ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"world_size": 16}, "ranks: 8 in the baseline, 16 in this run"),
        ({"backend": "gloo"}, "backend: nccl in the baseline, gloo in this run"),
        ({"torch": "2.6.0"}, "torch version: 2.5.1 in the baseline, 2.6.0 in this run"),
    ],
)
def test_runs_of_another_shape_or_version_are_not_compared(change, reason):
    old, new = report(curve(gbps=10)), report(curve(gbps=2), **change)
    comparison = compare(old, new, BAR)
    assert not comparison.comparable and reason in comparison.reasons and comparison.deltas == []
    (finding,) = findings(comparison, "base")
    assert finding.code == "baseline_not_comparable" and finding.severity.value == "warn"
    assert reason in finding.message


def test_another_dtype_no_common_size_or_a_partial_baseline_is_not_compared():
    old = report(curve(gbps=10))
    assert (
        "dtype: float32 in the baseline, bfloat16 in this run"
        in compare(old, report(curve(dtype="bfloat16")), BAR).reasons
    )
    (reason,) = compare(old, report(curve(sizes=[3 << 20, 12 << 20])), BAR).reasons
    assert reason.startswith("nothing measured in both: the baseline has all_reduce at 8-8M")
    partial = replace(old, complete=False)
    assert compare(partial, report(curve()), BAR).reasons == [
        "the baseline run did not finish (a partial report)"
    ]


# -- nodes, links, DDP ---------------------------------------------------------------------------
def test_a_node_whose_compute_score_halved_is_named():
    old = report(curve(), scores=even_scores())
    new = report(curve(), scores=even_scores(node1=0.5))
    comparison = compare(old, new, BAR)
    assert judged(comparison, "score", "node 0 (gpu-a)").status == "same"
    (finding,) = regressions(old, new)
    assert finding.severity.value == "fail" and finding.nodes == [1] and finding.ranks == [4, 5, 6, 7]
    assert finding.message.startswith("node 1 (gpu-b) compute score fell 50% from the baseline")


def test_a_slower_node_pair_and_ring_link_are_named_by_their_nodes():
    ring = {(3, 4): 10.0, (7, 0): 10.0, (0, 1): 40.0, (4, 5): 40.0}
    old = report(curve(), pairs=(10.0, 10.2), ring=ring)
    new = report(curve(), pairs=(2.0, 10.1), ring=ring | {(3, 4): 2.5})
    comparison = compare(old, new, BAR)
    assert judged(comparison, "link", "gpu-b".join(["node 1 (", ") -> node 0 (gpu-a)"])).status == "same"
    failed = {f.evidence["subject"]: f for f in regressions(old, new)}
    assert set(failed) == {"node 0 (gpu-a) -> node 1 (gpu-b)", "ring rank 3 -> rank 4 (node 0 -> node 1)"}
    assert failed["node 0 (gpu-a) -> node 1 (gpu-b)"].nodes == [0, 1]
    assert failed["ring rank 3 -> rank 4 (node 0 -> node 1)"].ranks == [3, 4]
    assert all(f.severity.value == "fail" for f in failed.values())


def test_slower_links_blame_the_one_node_they_share_or_the_path_when_all_are_slower():
    def link(src, dst, gbps):
        return BAR.judge("link", f"node {src} -> node {dst}", 10.0, gbps, noise=0.05, nodes=[src, dst])

    shared = blame([link(0, 1, 2.0), link(2, 1, 2.0), link(0, 2, 10.0)])
    assert [d.nodes for d in shared] == [[1], [1], [0, 2]]
    assert "every link of its kind that touches this node" in shared[0].note
    apart = blame([link(0, 1, 2.0), link(2, 3, 2.0), link(0, 2, 10.0)])
    assert [d.nodes for d in apart] == [[0, 1], [2, 3], [0, 2]]
    everyone = blame([link(0, 1, 2.0), link(1, 0, 3.0)])
    assert [d.nodes for d in everyone] == [[], []] and all("not one node" in d.note for d in everyone)


def test_ddp_tokens_per_second_against_its_steps_own_spread():
    old = report(curve(), tokens=(1000.0, 100.0, 110.0))  # p95 10% above p50
    assert regressions(old, report(curve(), tokens=(920.0, 100.0, 110.0))) == []  # 1.09x < 1.21x
    (finding,) = regressions(old, report(curve(), tokens=(500.0, 200.0, 215.0)))
    assert finding.severity.value == "fail" and finding.evidence["metric"] == "tokens_per_s"
    assert finding.message.startswith("DDP throughput fell 50% from the baseline (1000 -> 500 tokens/s)")
    ddp_only = compare(
        report([], tokens=(1000.0, 100.0, 110.0)), report([], tokens=(400.0, 100.0, 110.0)), BAR
    )
    assert [(d.metric, d.status) for d in ddp_only.deltas] == [
        ("tokens_per_s", "fail")
    ]  # no rows: still compared


# -- real runs of this machine -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b"), [("fast1", "fast2"), ("fast2", "fast3"), ("fast3", "fast1"), ("fast2", "fast1")]
)
def test_healthy_two_node_runs_of_this_machine_show_no_regression(a, b):
    old, new = load(FIXTURES / f"cluster_{a}.json"), load(FIXTURES / f"cluster_{b}.json")
    comparison = compare(old, new, BAR)
    assert comparison.comparable and findings(comparison, "base") == []


def test_the_run_on_the_shaped_nic_fails_both_probes_and_every_link_between_the_nodes():
    old, new = load(FIXTURES / "cluster_fast1.json"), load(FIXTURES / "cluster_slow.json")
    failed = [f for f in regressions(old, new) if f.severity.value == "fail"]
    probes = {f.evidence["probe"] for f in failed if f.evidence["metric"] == "busbw"}
    assert probes == {"all_reduce", "all_gather"}
    links = [f for f in failed if f.evidence["metric"] == "link"]
    assert len(links) == 4  # both node pairs and both ring links between the nodes: all of their kinds
    assert all(f.nodes == [] and "as did every link of its kind" in f.message for f in links)  # drains none
    assert not any(f.evidence["metric"] == "score" for f in regressions(old, new))


# -- the gate's hooks ----------------------------------------------------------------------------
def test_file_problem_names_a_missing_or_unreadable_baseline_in_one_line(tmp_path):
    assert file_problem(GateOptions()) is None
    assert file_problem(GateOptions(baseline=FIXTURES / "cluster_fast1.json")) is None
    missing = file_problem(GateOptions(baseline=tmp_path / "nope"))
    assert missing == f"--baseline {tmp_path / 'nope'}: no report there (a report.json or its folder)"
    (tmp_path / "report.json").write_text('{"verdict": "pass"}')
    lacking = file_problem(GateOptions(baseline=tmp_path))
    assert lacking.startswith(f"--baseline {tmp_path} is not a nccldoctor report.json: it has no job")
    (tmp_path / "garbage.json").write_bytes(b"\xff\xfe not json")
    assert "not a" in file_problem(GateOptions(baseline=tmp_path / "garbage.json"))
    assert all("\n" not in line for line in (missing, lacking))


def test_review_adds_the_findings_and_the_baseline_section_that_the_views_draw():
    new = load(FIXTURES / "cluster_slow.json")
    options = GateOptions(baseline=FIXTURES / "cluster_fast1.json", regression_fail=50.0)
    review(new, options)
    section = new.sections["baseline"]
    assert section["path"] == str(FIXTURES / "cluster_fast1.json") and section["comparable"]
    assert section["thresholds"] == {"fail_pct": 50.0, "noise_factor": 1.0}
    assert new.verdict == "fail" and new.exit_code == 1
    (all_reduce,) = [f for f in new.findings if f.evidence.get("probe") == "all_reduce"]
    assert all_reduce.code == "regression" and "all_reduce peak busbw at 2M fell 89%" in all_reduce.message
    titles = [title for title, _ in section_tables(new)]
    assert any(t.startswith("Baseline") and "fail beyond 50% worse" in t for t in titles)
    assert any(t.endswith("every size") for t in titles)


def test_review_of_a_baseline_that_went_away_says_so_instead_of_crashing(tmp_path):
    new = load(FIXTURES / "cluster_fast2.json")
    review(new, GateOptions(baseline=tmp_path / "gone"))
    assert [f.code for f in new.findings] == ["baseline_not_comparable"]
    assert new.sections["baseline"]["comparable"] is False
