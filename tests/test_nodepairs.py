"""Node-pair links beyond 16 nodes: a bounded sample of rounds, still naming a slow node."""

from __future__ import annotations

import pytest

from nccldoctor.nodepairs import (
    MATRIX_MAX,
    matrix_seconds,
    node_pair_links,
    node_pair_rounds,
    node_pairs_section,
    sampled_rounds,
)
from nccldoctor.probes.health.links import judge_links, pair_links


@pytest.mark.parametrize("nnodes", [8, 128, 1024])
def test_rounds_are_matchings_and_every_node_is_in_k_pairs(nnodes):
    rounds = node_pair_rounds(nnodes)
    k = nnodes - 1 if nnodes <= MATRIX_MAX else sampled_rounds(nnodes)
    assert len(rounds) == k  # 7, 9 and 12 rounds (barriers), not 1,023
    partners: dict[int, set[int]] = {n: set() for n in range(nnodes)}
    for pairs in rounds:
        members = [n for pair in pairs for n in pair]
        assert sorted(members) == list(range(nnodes))  # every node once per round
        for a, b in pairs:
            partners[a].add(b)
            partners[b].add(a)
    assert all(len(p) == k for p in partners.values())  # k distinct partners, none twice


def _seconds(nnodes: int, slow: int) -> list[list[float]]:
    seconds = [[0.0] * nnodes for _ in range(nnodes)]
    for pairs in node_pair_rounds(nnodes):
        for a, b in pairs:
            t = 0.04 if slow in (a, b) else 0.004
            seconds[a][b] = seconds[b][a] = t
    return seconds


@pytest.mark.parametrize("nnodes,slow", [(8, 3), (128, 100), (1024, 517)])
def test_a_slow_node_is_named_from_the_sampled_pairs(nnodes, slow):
    seconds = _seconds(nnodes, slow)
    nodes = list(range(nnodes))
    links = pair_links(seconds, nodes, nodes, 4 * 2**20)
    (finding,) = judge_links(links, {n: f"node{n}" for n in nodes})
    assert finding.code == "slow_link" and finding.nodes == [slow]


def test_the_report_keeps_a_matrix_up_to_16_nodes_and_a_pair_list_beyond():
    small = node_pairs_section(matrix_seconds(_seconds(4, 1)), [0, 1, 2, 3], 4 * 2**20)
    assert len(small["gbps"]) == 4 and small["gbps"][0][0] is None
    big = node_pairs_section(matrix_seconds(_seconds(64, 1)), list(range(64)), 4 * 2**20)
    assert "gbps" not in big and len(big["pairs"]) == 64 * sampled_rounds(64)
    for section in (small, big):  # both forms read the same way
        links = node_pair_links(section)
        assert min(links, key=lambda link: link[2])[:2] in {(1, b) for b in range(64)} | {
            (a, 1) for a in range(64)
        }
