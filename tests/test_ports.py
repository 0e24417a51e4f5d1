"""TCP checks on loopback, port sampling, and judging which node blocks which ports."""

import random
import socket
import time

import pytest

from nccldoctor.net.ports import Connected, Listening, blocks_backend, extra_ports, judge_ports
from nccldoctor.net.sockets import (
    OPEN,
    REFUSED,
    TIMEOUT,
    Listeners,
    compress_ports,
    connect_all,
    ephemeral_range,
    sample_ports,
)


@pytest.fixture
def full_backlog_port():
    """A loopback port whose accept queue is full: the kernel drops further SYNs (a timeout),
    the way a DROP rule does, without touching the firewall of this machine."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    held = socket.create_connection(("127.0.0.1", port), timeout=2)
    yield port
    held.close()
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_all_tells_open_refused_and_dropped_apart_in_one_timeout(full_backlog_port):
    with Listeners("127.0.0.1") as listeners:
        assert listeners.bind(free_port())
        (open_port,) = listeners.ports
        closed = free_port()
        start = time.monotonic()
        outcomes = connect_all(
            [("127.0.0.1", open_port), ("127.0.0.1", closed), ("127.0.0.1", full_backlog_port)], 0.5
        )
        elapsed = time.monotonic() - start
    assert outcomes == {
        ("127.0.0.1", open_port): OPEN,
        ("127.0.0.1", closed): REFUSED,
        ("127.0.0.1", full_backlog_port): TIMEOUT,
    }
    assert elapsed < 1.5  # in parallel: one timeout, not one per target


def test_many_dropped_targets_cost_one_timeout_per_batch(full_backlog_port):
    targets = [("127.0.0.1", full_backlog_port)] + [("127.0.0.1", free_port()) for _ in range(50)]
    start = time.monotonic()
    outcomes = connect_all(targets, 0.4, max_parallel=16)
    assert outcomes[("127.0.0.1", full_backlog_port)] == TIMEOUT
    assert time.monotonic() - start < 4 * 0.4 + 1.0


def test_sampled_ports_cover_the_range_one_per_stratum():
    ports = sample_ports(32768, 60999, 16, random.Random(7))
    assert len(ports) == 16 and ports == sorted(ports)
    width = (60999 - 32768 + 1) / 16
    assert [int((p - 32768) // width) for p in ports] == list(range(16))
    assert sample_ports(10, 12, 16, random.Random(0)) == [10, 11, 12]


def test_a_taken_port_is_resampled_not_lost():
    with socket.socket() as squatter, Listeners("127.0.0.1") as listeners:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        taken = squatter.getsockname()[1]
        low = taken - (taken % 64)
        listeners.bind_sampled(low, low + 63, 1, random.Random(0), tries=40)
        assert len(listeners.ports) == 1 and listeners.ports != [taken]


def test_ephemeral_range_reads_the_kernel_setting(tmp_path):
    path = tmp_path / "range"
    path.write_text("40000\t50000\n")
    assert ephemeral_range(path) == (40000, 50000)
    assert ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_compress_ports_and_huge_port_lists_are_sampled():
    assert compress_ports([5, 1, 2, 3, 9, 10]) == "1-3,5,9-10"
    ports, full = extra_ports([(1000, 5000)], random.Random(0))
    assert full == 4001 and len(ports) == 1024 and ports[0] >= 1000 and ports[-1] <= 5000
    assert extra_ports([(40000, 40002), (29400, 29400)], random.Random(0)) == (
        [29400, 40000, 40001, 40002],
        0,
    )


def listening(node, sampled=(33000, 45000), extra=()):
    return Listening(node, f"10.0.0.{node + 1}", (32768, 60999), list(sampled), list(extra))


def test_judge_names_only_the_node_whose_ports_fail_and_the_kind_of_rule():
    nodes = {n: listening(n, extra=[20000, 20001]) for n in range(3)}
    connected = {
        0: Connected(0, [(1, 33000, OPEN), (1, 45000, OPEN), (1, 20000, TIMEOUT), (1, 20001, TIMEOUT)]),
        1: Connected(1, [(0, 33000, OPEN), (2, 20000, OPEN)]),
        2: Connected(2, [(1, 20000, TIMEOUT), (1, 20001, REFUSED), (1, 33000, OPEN)]),
    }
    (finding,) = judge_ports(nodes, connected, {1: "host1"})
    assert finding.code == "port_blocked" and finding.nodes == [1]
    assert finding.evidence["from_nodes"] == [0, 2]
    assert finding.evidence["ports_blocked"] == [20000, 20001] and finding.evidence["ephemeral_blocked"] == []
    assert finding.evidence["outcomes"] == {"timeout": 3, "refused": 1}
    assert "--ports 20000-20001" in finding.message and "host1" in finding.message
    assert "--dport 20000:20001" in finding.fix and finding.fix.startswith("on node 1:")
    assert not blocks_backend(finding)  # the backend's ephemeral ports are fine: measure anyway


def test_dropped_ephemeral_range_blocks_the_backend_and_the_fix_opens_it():
    nodes = {0: listening(0), 1: listening(1)}
    connected = {
        0: Connected(0, [(1, 33000, TIMEOUT), (1, 45000, TIMEOUT)]),
        1: Connected(1, [(0, 33000, OPEN)]),
    }
    (finding,) = judge_ports(nodes, connected, {})
    assert finding.nodes == [1] and finding.evidence["ephemeral_blocked"] == [33000, 45000]
    assert "all 2 ports sampled across its ephemeral range 32768-60999" in finding.message
    assert "-s 10.0.0.1 --dport 32768:60999 -j ACCEPT" in finding.fix
    assert blocks_backend(finding)


def test_blocked_user_ports_inside_the_ephemeral_range_block_the_backend():
    nodes = {0: listening(0, extra=[40000, 20000]), 1: listening(1, extra=[40000, 20000])}
    connected = {0: Connected(0, [(1, 33000, OPEN), (1, 40000, TIMEOUT)]), 1: Connected(1, [])}
    (finding,) = judge_ports(nodes, connected, {})
    assert finding.evidence["ephemeral_blocked"] == [] and finding.evidence["backend_ports_blocked"] == [
        40000
    ]
    assert "inside the ephemeral range" in finding.message
    assert blocks_backend(finding)  # the kernel may give Gloo or NCCL port 40000: stop, don't hang
    below = {0: Connected(0, [(1, 20000, TIMEOUT)]), 1: Connected(1, [])}
    (finding,) = judge_ports(nodes, below, {})
    assert not blocks_backend(finding) and "inside" not in finding.message


def test_all_open_is_no_finding():
    nodes = {0: listening(0), 1: listening(1)}
    connected = {0: Connected(0, [(1, 33000, OPEN)]), 1: Connected(1, [(0, 45000, OPEN)])}
    assert judge_ports(nodes, connected, {}) == []
