"""Bandwidth formulas against values computed by hand with nccl-tests' definitions."""

import pytest

from nccldoctor.bandwidth import BUS_FACTORS, algbw_gbps, busbw_gbps


def test_algbw_is_bytes_per_second_over_1e9():
    # 1 GiB in 10 ms: 1073741824 / 0.01 / 1e9
    assert algbw_gbps(1 << 30, 10_000) == pytest.approx(107.3741824)


@pytest.mark.parametrize(
    ("collective", "n", "size", "time_us", "busbw"),
    [
        ("all_reduce", 8, 1 << 30, 10_000, 107.3741824 * 2 * 7 / 8),  # 187.90...
        ("all_reduce", 2, 1 << 20, 100, 10.48576 * 1.0),
        ("all_gather", 4, 1 << 20, 100, 10.48576 * 3 / 4),
        ("reduce_scatter", 16, 1 << 20, 100, 10.48576 * 15 / 16),
        ("all_to_all", 8, 1 << 20, 100, 10.48576 * 7 / 8),
        ("broadcast", 16, 1 << 20, 100, 10.48576),
        ("sendrecv", 2, 1 << 20, 100, 10.48576),
    ],
)
def test_busbw_matches_nccl_tests(collective, n, size, time_us, busbw):
    assert busbw_gbps(collective, size, time_us, n) == pytest.approx(busbw)


def test_single_rank_collectives_move_no_bus_traffic():
    assert busbw_gbps("all_reduce", 1 << 20, 100, 1) == 0.0
    assert busbw_gbps("all_gather", 1 << 20, 100, 1) == 0.0


def test_every_probe_has_a_factor():
    from nccldoctor.config import ALL_PROBES

    assert set(BUS_FACTORS) == set(ALL_PROBES)


def test_zero_time_gives_zero_not_a_division_error():
    assert algbw_gbps(1024, 0.0) == 0.0
