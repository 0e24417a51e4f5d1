"""The link-measurement schedule: every pair once, in O(N) rounds of disjoint pairs."""

import itertools

import pytest

from nccldoctor.schedule import ring_pairs, round_robin


@pytest.mark.parametrize("n", [*range(0, 20), 63, 64, 255, 256, 1023, 1024])
def test_every_pair_exactly_once_in_n_minus_1_rounds_for_even_n_and_n_for_odd(n):
    rounds = round_robin(n)
    pairs = [pair for r in rounds for pair in r]
    assert sorted(pairs) == list(itertools.combinations(range(n), 2))  # each pair once, a < b
    if n >= 2:
        assert len(rounds) == (n - 1 if n % 2 == 0 else n)
    for r in rounds:  # nobody is in two pairs of one round
        members = [x for pair in r for x in pair]
        assert len(members) == len(set(members))
        assert len(r) == n // 2


def test_ring_sends_each_rank_to_the_next():
    assert ring_pairs(4) == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert ring_pairs(1) == []
