from nccldoctor.consistency.majority import odd_ones_out


def test_one_odd_node_is_named_against_the_majority():
    result = odd_ones_out({0: "a", 1: "a", 2: "b", 3: "a"})
    assert result.majority == "a" and result.odd == [2] and not result.tie
    assert result.groups == {"a": [0, 1, 3], "b": [2]}
    assert result.differing == [2] and not result.agree


def test_two_nodes_that_differ_are_a_tie_naming_both():
    result = odd_ones_out({0: "x", 1: "y"})
    assert result.tie and result.majority is None and result.odd == []
    assert result.differing == [0, 1]
    assert result.groups == {"x": [0], "y": [1]}


def test_a_plurality_below_half_is_no_majority():
    # 2 of 4 agree: not more than half, so neither other node can be called the odd one
    result = odd_ones_out({0: 1, 1: 1, 2: 2, 3: 3})
    assert result.tie and result.differing == [0, 1, 2, 3]
    assert list(result.groups) == [1, 2, 3]  # largest group first


def test_several_odd_values_against_a_majority():
    result = odd_ones_out({4: ("d", 1), 0: ("d", 1), 2: ("d", 1), 7: ("e", 2), 5: ("f", 3)})
    assert result.majority == ("d", 1) and result.odd == [5, 7]


def test_agreement_and_no_nodes():
    same = odd_ones_out({0: "a", 1: "a"})
    assert same.agree and same.odd == [] and not same.tie and same.majority == "a"
    empty = odd_ones_out({})
    assert empty.agree and empty.majority is None and not empty.tie and empty.groups == {}
    single = odd_ones_out({3: "z"})
    assert single.majority == "z" and single.odd == []
