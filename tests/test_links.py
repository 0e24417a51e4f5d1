"""Link localisation: which node or which pair a slow link is blamed on (pure logic)."""

import pytest

from nccldoctor.findings import Severity, make_finding
from nccldoctor.probes.health.links import (
    judge_links,
    links_of_slow_nodes,
    pair_links,
    reference_gbps,
    ring_links,
    slow_links,
)

MB4 = 4_000_000


def matrix(n, gbps=1.0, slow_node=None, slow_pair=None, slow_gbps=0.05):
    """seconds[a][b] for n nodes moving MB4 bytes."""
    seconds = [[0.0] * n for _ in range(n)]
    for a in range(n):
        for b in range(n):
            if a != b:
                slow = slow_node in (a, b) or {a, b} == set(slow_pair or ())
                seconds[a][b] = MB4 / ((slow_gbps if slow else gbps) * 1e9)
    return seconds


@pytest.mark.parametrize("n", [3, 4, 8])
def test_a_node_with_every_link_slow_is_named(n):
    links = pair_links(matrix(n, slow_node=1), list(range(n)), list(range(n)), MB4)
    (finding,) = judge_links(links, {1: "node-b"})
    assert (finding.code, finding.nodes) == ("slow_link", [1])
    assert finding.severity == Severity.FAIL  # 20x slower
    assert "node 1 (node-b)" in finding.message and "node 1 (node-b)" in finding.fix
    assert len(finding.evidence["slow_links"]) == 2 * (n - 1)
    assert finding.evidence["reference_gbps"]["node_pair"] == pytest.approx(1.0)


def test_one_slow_pair_among_four_nodes_names_the_pair_not_a_node():
    links = pair_links(matrix(4, slow_pair=(0, 2)), [0, 1, 2, 3], [0, 1, 2, 3], MB4)
    findings = judge_links(links, {})
    assert [f.nodes for f in findings] == [[0, 2], [0, 2]]  # both directions, each named
    assert "node 0 -> node 2" in findings[0].message


def test_node_ranks_label_the_links_not_matrix_positions():
    links = pair_links(matrix(3, slow_node=2), [0, 8, 16], [0, 1, 2], MB4)
    assert {(link.src_rank, link.src_node) for link in links} == {(0, 0), (8, 1), (16, 2)}


def test_a_link_half_as_fast_warns_and_noise_does_not():
    seconds = matrix(3)
    seconds[0][1] = MB4 / 0.4e9  # 0.4x
    (finding,) = judge_links(pair_links(seconds, [0, 1, 2], [0, 1, 2], MB4), {})
    assert finding.severity == Severity.WARN and finding.nodes == [0, 1]
    seconds[0][1] = MB4 / 0.7e9  # 0.7x: noise on a busy host
    assert judge_links(pair_links(seconds, [0, 1, 2], [0, 1, 2], MB4), {}) == []


def test_two_nodes_have_nothing_to_compare():
    links = pair_links(matrix(2, slow_pair=(0, 1)), [0, 1], [0, 1], MB4)
    assert slow_links(links) == [] and reference_gbps(links) == {}


def test_ring_links_are_grouped_by_kind_and_a_slow_receive_names_its_sender():
    # 2 nodes x 2 ranks: 0->1 and 2->3 stay inside a node, 1->2 and 3->0 cross.
    node_of = [0, 0, 1, 1]
    fast_intra, inter = MB4 / 10e9, MB4 / 1e9
    links = ring_links([inter, fast_intra, inter, fast_intra], node_of, MB4)
    assert [(link.src_rank, link.dst_rank, link.kind) for link in links] == [
        (3, 0, "ring_inter"),
        (0, 1, "ring_intra"),
        (1, 2, "ring_inter"),
        (2, 3, "ring_intra"),
    ]
    assert slow_links(links) == []  # fewer than four of each kind: no reference


def test_a_slow_intra_node_ring_link_names_its_node():
    node_of = [0, 0, 0, 0, 1, 1, 1, 1]
    seconds = [MB4 / 10e9] * 8
    seconds[0] = seconds[4] = MB4 / 1e9  # the two crossing links
    seconds[6] = MB4 / 1e9  # 5 -> 6 on node 1: 10x slower than its intra-node peers
    (finding,) = judge_links(ring_links(seconds, node_of, MB4), {})
    assert finding.nodes == [1] and finding.evidence["slow_links"][0]["from_rank"] == 5


def test_three_ring_links_across_three_nodes_are_not_judged_against_the_fastest():
    links = ring_links([MB4 / 1.6e9, MB4 / 1.2e9, MB4 / 0.7e9], [0, 1, 2], MB4)
    assert reference_gbps(links) == {} and judge_links(links, {}) == []


def test_on_cpus_a_slow_link_of_a_straggler_node_is_its_consequence_not_a_cable():
    straggler = make_finding("straggler_node", "node 1 is slow", nodes=[1], severity=Severity.FAIL)
    at_node_1 = make_finding("slow_link", "every slow link touches node 1", nodes=[1], severity=Severity.FAIL)
    elsewhere = make_finding(
        "slow_link", "node 0 -> node 2 ran at 0.1 GB/s", nodes=[0, 2], severity=Severity.FAIL
    )
    judged = links_of_slow_nodes([straggler, at_node_1, elsewhere], "cpu")
    assert judged[0] is straggler and judged[2] is elsewhere  # another node's link: still a cable
    note = judged[1]
    assert (note.code, note.severity, note.nodes) == ("slow_link", Severity.INFO, [1])
    assert "straggler_node too" in note.message and note.fix.startswith("fix the straggler first")
    # On GPUs the NIC moves the data: a slow GPU says nothing about its links.
    assert links_of_slow_nodes([straggler, at_node_1], "cuda") == [straggler, at_node_1]
