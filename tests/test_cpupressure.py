"""CPU crowding during the compute probes, and what it does to the straggler verdict (pure logic)."""

from __future__ import annotations

import time

import psutil
import pytest
from test_hostload import quiet
from test_stragglers import compute

from nccldoctor import cpupressure
from nccldoctor.cpupressure import CpuPressure, CpuPressureWatch, pressure_between
from nccldoctor.findings import Severity
from nccldoctor.hostload import host_rows, judge_hosts
from nccldoctor.probes.health.stragglers import (
    ScoreThresholds,
    contention_excuses,
    judge_stragglers,
    score_ranks,
    slow_ranks,
)

T = ScoreThresholds()
CPUS = psutil.cpu_count() or 1


def crowded(tasks_per_core=2.0, throttled=0.0, steal=0.0) -> CpuPressure:
    return CpuPressure(
        window_s=3.0,
        cpu_count=2,
        runnable_mean=2 * tasks_per_core,
        runnable_max=6,
        steal_pct=steal,
        psi_some_pct=95.0,
        psi_full_pct=0.0,
        throttled_pct=throttled,
    )


# -- reading the kernel's counters -------------------------------------------------------------


def test_procs_running_psi_totals_and_cgroup_throttling_are_read(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3\nprocs_running 7\nprocs_blocked 0\n")
    assert cpupressure.procs_running(stat) == 7
    assert cpupressure.procs_running(tmp_path / "missing") is None
    psi = tmp_path / "cpu"
    psi.write_text(
        "some avg10=0.73 avg60=3.87 avg300=8.92 total=3042522851\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=5\n"
    )
    assert cpupressure.psi_totals(psi) == {"some": 3042522851, "full": 5}
    assert cpupressure.psi_totals(tmp_path / "none") is None


def test_cgroup_throttling_v1_in_ns_and_v2_in_us(tmp_path):
    v1 = tmp_path / "v1"
    (v1 / "cpu" / "bed" / "node1").mkdir(parents=True)
    (v1 / "cpu" / "bed" / "node1" / "cpu.stat").write_text(
        "nr_periods 10\nnr_throttled 4\nthrottled_time 2500000\n"
    )
    cgroup = tmp_path / "cgroup1"
    cgroup.write_text("4:memory:/x\n2:cpuacct:/\n1:cpu:/bed/node1\n0::/\n")
    assert cpupressure.throttled_us(cgroup, v1) == 2500.0
    v2 = tmp_path / "v2"
    (v2 / "bed").mkdir(parents=True)
    (v2 / "bed" / "cpu.stat").write_text("usage_usec 100\nnr_throttled 3\nthrottled_usec 1234\n")
    only_v2 = tmp_path / "cgroup2"
    only_v2.write_text("0::/bed\n")
    assert cpupressure.throttled_us(only_v2, v2) == 1234.0
    assert cpupressure.throttled_us(tmp_path / "none", v2) is None


def test_the_window_turns_counters_into_shares_of_it():
    pressure = pressure_between(
        2.0, {"some": 0, "full": 0}, {"some": 1_000_000, "full": 200_000}, 10.0, 10.0, 0.0, 500_000, [3, 5, 4]
    )
    assert (pressure.psi_some_pct, pressure.psi_full_pct) == (50.0, 10.0)
    assert pressure.throttled_pct == 25.0 and pressure.steal_pct == 0.0
    assert pressure.runnable_mean == 4.0 and pressure.runnable_max == 5
    unknown = pressure_between(1.0, None, None, None, None, None, None, [])
    assert (unknown.psi_some_pct, unknown.steal_pct, unknown.throttled_pct) == (None, None, None)


def test_tasks_per_core_counts_steal_and_decides_oversubscribed():
    assert crowded(tasks_per_core=1.0).share_factor == 1.0 and not crowded(1.0).oversubscribed
    assert crowded(tasks_per_core=2.0).share_factor == pytest.approx(2.0) and crowded(2.0).oversubscribed
    assert crowded(tasks_per_core=1.0, steal=50.0).share_factor == pytest.approx(2.0)  # half the CPU stolen
    assert crowded(throttled=30.0).throttled and not crowded(throttled=2.0).throttled
    assert "4.0 runnable tasks on 2 cores" in crowded().describe()
    assert CpuPressure.from_json(crowded().to_json()) == crowded()


def test_the_watch_samples_this_host_until_stopped():
    watch = CpuPressureWatch()
    watch.start()
    time.sleep(0.2)
    pressure = watch.stop()
    assert pressure is not None and 0.15 <= pressure.window_s < 2.0
    assert pressure.cpu_count == CPUS and pressure.runnable_mean >= 0


# -- the verdict -------------------------------------------------------------------------------


def two_by_two(slow_rank=3, slowdown=1.35):
    """2 nodes x 2 ranks, one rank's step compute slower (as a healthy rank on shared cores)."""
    computes = [compute() for _ in range(4)]
    computes[slow_rank] = compute(slowdown=slowdown)
    node_of = [0, 0, 1, 1]
    verdicts = score_ranks(computes, node_of, ("step_best_s",))
    return verdicts, computes


def test_a_slow_rank_on_an_oversubscribed_node_is_host_contention_not_a_straggler():
    # As seen on the emulated 2x2 cluster: rank 3 at 0.74 while 4 ranks shared 2 cores.
    verdicts, computes = two_by_two()
    assert [f.code for f in judge_stragglers(verdicts, computes, T, {})] == ["straggler_rank"]  # before
    pressure = {0: crowded(2.0), 1: crowded(2.0)}
    excused = contention_excuses(slow_ranks(verdicts, T, computes), pressure)
    assert judge_stragglers(verdicts, computes, T, {}, excused=excused) == []
    (finding,) = judge_hosts({0: quiet(), 1: quiet(host="n1")}, crowding=excused)
    assert (finding.code, finding.severity, finding.nodes) == ("host_contention", Severity.WARN, [1])
    assert finding.evidence["reasons"] == ["oversubscribed"] and finding.evidence["excused_ranks"] == [3]
    assert finding.message.startswith("on node 1 (n1) the CPUs were oversubscribed while the ranks")
    assert "rank 3 (score 0.74)" in finding.message and "4.0 runnable tasks on 2 cores" in finding.message
    assert "outside the job" not in finding.message  # the crowding may be the job's own ranks
    rows = host_rows({0: quiet(), 1: quiet()}, pressure, excused)
    assert [r["status"] for r in rows] == ["ok", "oversubscribed"] and rows[1]["tasks_per_core"] == 2.0


def test_a_rank_slower_than_the_crowding_explains_is_still_a_straggler():
    verdicts, computes = two_by_two(slowdown=4.0)  # a fifth of a core, on a node 1.5x crowded
    excused = contention_excuses(slow_ranks(verdicts, T, computes), {1: crowded(1.5)})
    assert excused == {}
    (finding,) = judge_stragglers(verdicts, computes, T, {}, excused=excused)
    assert (finding.code, finding.ranks, finding.severity) == ("straggler_rank", [3], Severity.FAIL)


def test_a_node_throttled_by_its_own_cpu_quota_is_not_excused():
    verdicts, computes = two_by_two()
    assert contention_excuses(slow_ranks(verdicts, T, computes), {1: crowded(2.0, throttled=40.0)}) == {}


def test_a_slow_rank_on_an_uncrowded_node_is_still_a_straggler():
    verdicts, computes = two_by_two()
    assert contention_excuses(slow_ranks(verdicts, T, computes), {0: crowded(2.0), 1: crowded(1.0)}) == {}
