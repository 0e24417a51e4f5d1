"""Clock offsets through the store: the estimate, the protocol on an in-process store with
shifted fake clocks, the judge, and deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch.distributed as dist

from nccldoctor.consistency.clocks import (
    REFERENCE,
    ClockOffset,
    ClockSample,
    best_offset,
    exchange_clocks,
    judge_clocks,
    measure_clock,
    publish_offset,
    read_offsets,
    serve_clock,
)
from nccldoctor.findings import CATALOG, Severity
from nccldoctor.runtime import LaunchEnv

HOSTS = {0: "host0", 1: "host1", 2: "host2", 3: "host3"}
STORE_TIMEOUT_ERRORS = (RuntimeError, dist.DistError)  # what runtime.wait_for raises


def deadline_in(seconds: float) -> Callable[[], float]:
    """A remaining_s() that counts down, as the supervisor's does."""
    end = time.monotonic() + seconds
    return lambda: end - time.monotonic()


def shifted(by_s: float) -> Callable[[], float]:
    return lambda: time.time() + by_s


def run_in_threads(calls: dict[Any, Callable[[], Any]], join_s: float = 30) -> dict[Any, Any]:
    """Each call in its own thread; its result, or the exception it raised."""
    results: dict[Any, Any] = {}

    def run(key: Any, call: Callable[[], Any]) -> None:
        try:
            results[key] = call()
        except Exception as exc:  # handed back to the test, which asserts on it
            results[key] = exc

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(join_s)
    assert not any(t.is_alive() for t in threads), "a clock exchange hung"
    return results


# -- the estimate -----------------------------------------------------------------------------------
def test_best_offset_takes_the_tightest_round_trip():
    samples = [
        ClockSample(t0=100.0, server=95.0, t1=100.4),  # round trip 0.4 s: offset 5.2
        ClockSample(t0=200.0, server=194.99, t1=200.02),  # 0.02 s: offset 5.02, the winner
        ClockSample(t0=300.0, server=295.5, t1=300.1),  # 0.1 s: offset 4.55
    ]
    best = best_offset(samples)
    assert best.offset_s == pytest.approx(5.02)
    assert best.uncertainty_s == pytest.approx(0.01)
    assert best.rounds == 3


def test_a_node_behind_has_a_negative_offset_and_no_samples_is_an_error():
    assert best_offset([ClockSample(t0=10.0, server=12.0, t1=10.2)]).offset_s == pytest.approx(-1.9)
    with pytest.raises(ValueError):
        best_offset([])


def test_an_offset_travels_through_the_store_as_json():
    store = dist.HashStore()
    publish_offset(store, 2, ClockOffset(-3.5, 0.002, 8))
    assert read_offsets(store, [0, 2], deadline_in(5)) == {0: REFERENCE, 2: ClockOffset(-3.5, 0.002, 8)}


# -- the protocol -----------------------------------------------------------------------------------
def launch(rank: int, node: int, local_rank: int = 0, nnodes: int = 3) -> LaunchEnv:
    return LaunchEnv(
        rank=rank,
        world_size=2 * nnodes,
        local_rank=local_rank,
        local_world_size=2,
        node_rank=node,
        nnodes=nnodes,
    )


def test_shifted_node_clocks_are_measured_within_their_uncertainty():
    store = dist.HashStore()
    shifts = {0: 0.0, 1: 5.0, 2: -0.25}
    remaining = deadline_in(20)

    def rank_of(rank: int) -> Callable[[], dict[int, ClockOffset]]:
        node, local_rank = divmod(rank, 2)  # 3 nodes of 2 ranks, node 0's clock unshifted
        return lambda: exchange_clocks(
            store, launch(rank, node, local_rank), remaining, clock=shifted(shifts[node])
        )

    results = run_in_threads({rank: rank_of(rank) for rank in range(6)})
    offsets = results[0]
    assert set(offsets) == {0, 1, 2}
    assert offsets[0] == REFERENCE  # rank 0's clock is the reference, not measured
    for node in (1, 2):
        measured = offsets[node]
        assert measured.rounds == 8
        assert abs(measured.offset_s - shifts[node]) <= measured.uncertainty_s + 1e-6, measured
        assert measured.uncertainty_s < 0.5  # an in-process store answers in far less
        assert results[2 * node] == {node: measured}  # the leader returns what rank 0 read
    assert results[1] == results[3] == results[5] == {}  # not leaders: one clock per node


def test_measure_and_serve_directly_with_fewer_rounds():
    store = dist.HashStore()
    remaining = deadline_in(20)
    results = run_in_threads(
        {
            "server": lambda: serve_clock(store, [0, 1], 3, remaining),
            "node1": lambda: measure_clock(store, 1, 3, remaining, clock=shifted(-40.0)),
            "node0": lambda: measure_clock(store, 0, 3, remaining),
        }
    )
    assert results["server"] is None and results["node0"] == REFERENCE
    node1 = results["node1"]
    assert node1.rounds == 3 and abs(node1.offset_s + 40.0) <= node1.uncertainty_s + 1e-6


def test_a_node_that_never_asks_times_out_the_server_within_the_deadline():
    store = dist.HashStore()
    start = time.monotonic()
    with pytest.raises(STORE_TIMEOUT_ERRORS):
        serve_clock(store, [0, 1], 8, deadline_in(0.5))
    assert time.monotonic() - start < 3


def test_a_server_that_never_answers_times_out_the_node_within_the_deadline():
    store = dist.HashStore()
    start = time.monotonic()
    with pytest.raises(STORE_TIMEOUT_ERRORS):
        measure_clock(store, 1, 8, deadline_in(0.5))
    assert time.monotonic() - start < 3


def test_a_node_that_never_publishes_times_out_the_reader():
    store = dist.HashStore()
    with pytest.raises(STORE_TIMEOUT_ERRORS):
        read_offsets(store, [0, 1], deadline_in(0.3))


# -- the judge --------------------------------------------------------------------------------------
def offsets(**by_node: tuple[float, float]) -> dict[int, ClockOffset]:
    measured = {int(name[1:]): ClockOffset(off, unc, 8) for name, (off, unc) in by_node.items()}
    return {0: REFERENCE, **measured}


def test_the_judge_names_only_the_skewed_node_with_its_offset_in_words():
    (finding,) = judge_clocks(offsets(n1=(0.2, 0.001), n2=(5.0213, 0.0003), n3=(-0.4, 0.002)), HOSTS)
    assert finding.code == "clock_skew" and finding.severity is Severity.WARN
    assert finding.nodes == [2] and finding.ranks == []
    assert "node 2 (host2) is 5.02 s ± 0.3 ms ahead of rank 0's clock" in finding.message
    assert set(finding.evidence["nodes"]) == {2}
    assert finding.evidence["nodes"][2] == {
        "hostname": "host2",
        "offset_s": 5.0213,
        "uncertainty_s": 0.0003,
        "rounds": 8,
    }
    assert (
        "chronyc tracking" in finding.fix and "timedatectl" in finding.fix and "node 2 (host2)" in finding.fix
    )
    assert "node 0" not in finding.fix  # the others agree with rank 0: its clock is not suspect


def test_a_node_behind_is_said_to_be_behind():
    (finding,) = judge_clocks(offsets(n1=(-2.5, 0.000012)), HOSTS)
    assert "node 1 (host1) is 2.5 s ± 12 µs behind rank 0's clock" in finding.message


def test_synchronised_clocks_give_no_finding():
    assert judge_clocks(offsets(n1=(0.003, 0.001), n2=(-0.9, 0.001)), HOSTS) == []
    assert judge_clocks({0: REFERENCE}, HOSTS) == []


def test_an_offset_the_uncertainty_could_explain_is_not_judged():
    # 1.5 s ± 0.6 s: the clock may be only 0.9 s off, under the 1 s threshold
    assert judge_clocks(offsets(n1=(1.5, 0.6)), HOSTS) == []
    assert judge_clocks(offsets(n1=(1.5, 0.4)), HOSTS)[0].nodes == [1]


def test_thresholds_are_configurable():
    skews = offsets(n1=(0.2, 0.001), n2=(5.0, 0.001))
    (finding,) = judge_clocks(skews, HOSTS, warn_s=0.1)
    assert finding.nodes == [1, 2]
    assert judge_clocks(skews, HOSTS, warn_s=10.0) == []
    failed, warned = judge_clocks(skews, HOSTS, warn_s=0.1, fail_s=2.0)
    assert (failed.severity, failed.nodes) == (Severity.FAIL, [2])
    assert (warned.severity, warned.nodes) == (Severity.WARN, [1])
    assert failed.evidence["fail_s"] == 2.0 and warned.evidence["warn_s"] == 0.1


def test_beyond_the_fail_threshold_is_fail_and_warnings_stay_separate():
    findings = judge_clocks(offsets(n1=(45.0, 0.001), n2=(-3.0, 0.001), n3=(0.01, 0.001)), HOSTS)
    assert [(f.severity, f.nodes) for f in findings] == [(Severity.FAIL, [1]), (Severity.WARN, [2])]
    assert "more than 30 s" in findings[0].message and "more than 1 s" in findings[1].message


def test_every_other_node_off_the_same_way_points_at_rank_0s_clock():
    (finding,) = judge_clocks(offsets(n1=(-7.0, 0.001), n2=(-7.1, 0.001), n3=(-6.9, 0.001)), HOSTS)
    assert finding.nodes == [1, 2, 3]
    assert "check node 0 (host0) first" in finding.fix


def test_clock_skew_is_catalogued_as_a_warning():
    assert CATALOG["clock_skew"].severity is Severity.WARN
