"""Robust straggler scores: one slow rank does not move the reference it is judged against."""

import pytest

from nccldoctor.stats import across_ranks, mad, straggler_scores


def test_across_ranks_names_the_slowest():
    assert across_ranks([1.0, 3.0, 2.0]) == {"mean": 2.0, "min": 1.0, "max": 3.0, "argmax": 1}


def test_one_slow_rank_scores_low_and_leaves_the_others_at_one():
    times = [1.00, 1.01, 0.99, 1.02, 0.98, 1.00, 1.01, 2.50]
    scores = straggler_scores(times)
    assert scores[7].score == pytest.approx(1.0 / 2.5, rel=0.02)
    assert all(0.95 < s.score < 1.05 for s in scores[:7])
    assert scores[7].robust_z > 10 and all(abs(s.robust_z) < 2.5 for s in scores[:7])


def test_identical_times_are_all_typical():
    scores = straggler_scores([2.0, 2.0, 2.0])
    assert [s.score for s in scores] == [1.0, 1.0, 1.0] and [s.robust_z for s in scores] == [0.0] * 3
    assert mad([1.0, 2.0, 3.0, 100.0]) == 1.0  # the outlier does not inflate the spread


def test_with_two_ranks_the_faster_is_the_reference():
    fast, slow = straggler_scores([1.0, 3.0])
    assert (fast.score, slow.score) == (1.0, pytest.approx(1 / 3))
