"""The port check's plan at 8, 128 and 1,024 nodes: connections and rounds counted, every node
checking and checked, and a node that drops every inbound connection still found and named."""

from __future__ import annotations

import json
import math
import random

import pytest

from nccldoctor.net.fanout import FULL_MESH_MAX, RANDOM_PEERS, bounded_offsets, port_plan, seed_of
from nccldoctor.net.ports import PORT_SAMPLES, Connected, Listening, judge_ports, port_summary
from nccldoctor.net.sockets import OPEN, REFUSED, TIMEOUT

SEED = 20261201

# (nodes, rounds, node pairs): the counts the README's scaling model states
EXPECTED = {
    8: (7, 56),  # full mesh: N-1 rounds, N(N-1) pairs
    17: (5 + RANDOM_PEERS, None),  # +1..+16, and -1 is +16: one offset fewer
    128: (8 + RANDOM_PEERS, None),  # +1..+64 (7 offsets) and -1, then the random cycles
    1024: (11 + RANDOM_PEERS, None),  # +1..+512 (10 offsets) and -1, then the random cycles
}


def _min_degree(nnodes: int) -> int:
    """The offsets alone guarantee this many distinct peers each way (log2 N + 1, or log2 N
    when N - 1 is a power of two and -1 is one of the +2^j)."""
    if nnodes <= FULL_MESH_MAX:
        return nnodes - 1
    assert len(bounded_offsets(nnodes)) >= math.ceil(math.log2(nnodes))
    return len(bounded_offsets(nnodes))


@pytest.mark.parametrize("nnodes", sorted(EXPECTED))
def test_rounds_connections_and_degrees(nnodes):
    plan = port_plan(nnodes, SEED)
    rounds, pairs = EXPECTED[nnodes]
    assert len(plan.rounds) == rounds
    if pairs is not None:
        assert len(plan.pairs) == pairs
    k = _min_degree(nnodes)
    # N*k connections, bounded: at most one pair per node per round
    assert nnodes * k <= len(plan.pairs) <= nnodes * len(plan.rounds)
    for round_ in plan.rounds:  # each round is a permutation without a fixed point
        assert sorted(src for src, _ in round_) == list(range(nnodes))
        assert sorted(dst for _, dst in round_) == list(range(nnodes))
        assert all(src != dst for src, dst in round_)
    for node in range(nnodes):
        assert len(plan.targets(node)) >= k
        assert len(plan.sources(node)) >= k
        assert node not in plan.targets(node)
    summary = plan.summary()
    assert summary["min_in"] >= k and summary["min_out"] >= k and summary["pairs"] == len(plan.pairs)


def test_connections_at_1024_nodes_against_the_full_mesh():
    plan = port_plan(1024, SEED)
    assert len(plan.pairs) <= 1024 * 13  # vs 1,047,552 pairs in a full mesh
    assert len(plan.pairs) * PORT_SAMPLES <= 213_000  # TCP connections, vs 16.8 million
    assert max(len(plan.targets(n)) for n in range(1024)) <= 13


def test_the_plan_is_the_same_on_every_node_and_changes_with_the_seed():
    assert port_plan(128, SEED).pairs == port_plan(128, SEED).pairs
    assert port_plan(128, SEED).pairs != port_plan(128, SEED + 1).pairs
    assert seed_of("job-42", random.Random(1)) == seed_of("job-42", random.Random(2))
    assert seed_of("none", random.Random(1)) != seed_of("none", random.Random(2))


def test_the_full_mesh_threshold():
    assert port_plan(FULL_MESH_MAX, SEED).kind == "full_mesh"
    assert len(port_plan(FULL_MESH_MAX, SEED).pairs) == FULL_MESH_MAX * (FULL_MESH_MAX - 1)
    assert port_plan(FULL_MESH_MAX + 1, SEED).kind == "bounded"
    assert port_plan(2, SEED).pairs == [(0, 1), (1, 0)]


def _simulate(nnodes: int, blocked: int) -> tuple[dict[int, Listening], dict[int, Connected]]:
    """Every node listens on 16 ports; `blocked` drops every inbound connection (a DROP rule)."""
    listening = {
        n: Listening(n, f"10.{n // 256}.{n % 256}.1", (32768, 60999), list(range(40000, 40016)), [])
        for n in range(nnodes)
    }
    plan = port_plan(nnodes, SEED)
    connected = {
        src: Connected(
            src,
            [
                (dst, port, TIMEOUT if dst == blocked else OPEN)
                for dst in plan.targets(src)
                for port in listening[dst].sampled
            ],
        )
        for src in range(nnodes)
    }
    return listening, connected


@pytest.mark.parametrize("nnodes,blocked", [(8, 5), (17, 0), (128, 77), (1000, 999), (1024, 1000)])
def test_a_node_that_drops_every_inbound_connection_is_found_and_named(nnodes, blocked):
    listening, connected = _simulate(nnodes, blocked)
    findings = judge_ports(listening, connected, {n: f"node{n:04d}" for n in range(nnodes)})
    assert [f.code for f in findings] == ["port_blocked"]
    (finding,) = findings
    assert finding.nodes == [blocked]
    assert f"node{blocked:04d}" in finding.message
    plan = port_plan(nnodes, SEED)
    assert finding.evidence["from_nodes"] == plan.sources(blocked)
    assert len(finding.evidence["from_nodes"]) >= _min_degree(nnodes)
    assert finding.evidence["backend_ports_blocked"] == list(range(40000, 40016))


def test_the_reports_port_entry_is_bounded_beyond_the_mesh():
    listening, connected = _simulate(1024, 3)
    plan = port_plan(1024, SEED)
    summary = port_summary(listening, connected, plan)
    assert summary["pairs_checked"] == len(plan.pairs)
    assert {p["to_node"] for p in summary["pairs"]} == {3}  # only the failing pairs are listed
    assert summary["pairs_open"] == len(plan.pairs) - len(plan.sources(3))
    assert summary["plan"]["kind"] == "bounded"
    small = port_summary(*_simulate(8, 3), port_plan(8, SEED))
    assert len(small["pairs"]) == 56  # a full mesh keeps every pair


@pytest.mark.parametrize("closed", [None, 7])
def test_twenty_nodes_check_their_planned_peers_over_real_sockets(monkeypatch, closed):
    """The network phase's port round for 20 'nodes' (threads, one loopback address each,
    127.0.1.N): each connects to its planned peers only, every listener stays up until the
    nodes checking it are done, and rank 0's summary counts the plan's pairs, all open; or,
    when node `closed` shuts its listeners once published (every connect to it refused), the
    one `port_blocked` names it and exactly the peers the plan gave it."""
    import threading

    import nccldoctor.probes.network as network

    real_open = network.open_listeners

    def open_listeners(node_rank, *args):
        listeners, listening = real_open(node_rank, *args)
        if node_rank == closed:
            listeners.close()
        return listeners, listening

    monkeypatch.setattr(network, "open_listeners", open_listeners)
    from datetime import timedelta

    import torch.distributed as dist

    from nccldoctor.config import parse_args
    from nccldoctor.probes.network import NetworkCheck
    from nccldoctor.runtime import LaunchEnv

    nnodes = 20
    server = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=30), wait_for_workers=False)
    targets = {n: f"127.0.1.{n + 1}" for n in range(nnodes)}
    plan = port_plan(nnodes, SEED)
    server.set("net/targets", json.dumps(targets))
    options = parse_args([]).network
    checks = []
    for node in range(nnodes):
        store = dist.TCPStore("127.0.0.1", server.port, 1, False, timeout=timedelta(seconds=30))
        launch = LaunchEnv(
            rank=node, world_size=nnodes, node_rank=node, nnodes=nnodes, master_addr="127.0.0.1"
        )
        checks.append(NetworkCheck(store, launch, options, "gloo", lambda: 20.0, lambda step: None))
    checks[0].section = {}
    recorded = []
    checks[0].record = recorded.append

    def node_zero() -> None:  # as in NetworkCheck.run: check, then judge, on one store client
        checks[0]._check_ports(targets, plan)
        checks[0]._decide_ports(plan)

    threads = [threading.Thread(target=node_zero)]
    threads += [threading.Thread(target=c._check_ports, args=(targets, plan)) for c in checks[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    ports = checks[0].section["ports"]
    assert ports["plan"]["kind"] == "bounded"
    assert ports["pairs_checked"] == len(plan.pairs) < nnodes * (nnodes - 1)
    verdict = json.loads(server.get("net/ports_decision"))["verdict"]
    if closed is None:
        assert ports["pairs_open"] == len(plan.pairs) and ports["pairs"] == []
        assert verdict == "go"
        return
    assert {p["to_node"] for p in ports["pairs"]} == {closed}
    assert sorted(p["from_node"] for p in ports["pairs"]) == plan.sources(closed)
    assert verdict == "stop"  # the backend's ephemeral ports: init would hang
    (finding,) = [f for result in recorded for f in result.findings]
    assert finding.code == "port_blocked" and finding.nodes == [closed]
    assert finding.evidence["from_nodes"] == plan.sources(closed)
    assert finding.evidence["outcomes"] == {REFUSED: len(plan.sources(closed)) * PORT_SAMPLES}
