"""Link probes: every rank's ring link, and the bandwidth between every pair of nodes.

Ring: each rank sends LINK_BYTES to rank+1 while it receives from rank-1 (every rank at once,
a barrier before each iteration so a slow link cannot delay the next iteration's start
elsewhere). On Gloo a rank times its receive, which is the link from rank-1; on NCCL the two
operations are one group, so a rank times both directions together.

Node pairs: one leader rank per node (its lowest rank). The pairs run in the rounds of a
round-robin tournament (nccldoctor.schedule): every round's pairs are disjoint, so they run at
the same time without sharing a node, and N nodes need N-1 rounds (N when N is odd), not
N(N-1)/2. In each pair both leaders send and receive at once; each times what it receives, so
the matrix is directional: bandwidth[a][b] is a -> b.

`judge_links` turns slow links into `slow_link` findings and localises them: a link is slow
against what the links of its kind reach (their 75th percentile; kinds: node pair, inter-node
ring link, intra-node ring link).
When every slow link touches one node, that node is named (its NIC, cable or switch port is the
common factor); otherwise the pairs are named.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nccldoctor.bandwidth import algbw_gbps
from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.nodepairs import node_pair_rounds
from nccldoctor.probes.health.compute import gather_floats
from nccldoctor.timing import synchronize

# Large enough that the transfer, not the ranks' skew leaving the barrier (a fraction of a
# millisecond), is what a receive time measures: 4 MiB is about 4 ms at 1 GB/s.
LINK_BYTES = {"cpu": 4 << 20, "cuda": 64 << 20}
LINK_ITERS = 5  # timed exchanges per link; the median counts
LINK_WARMUP = 1
SLOW_WARN = 0.5  # a link below this fraction of its kind's reference (reference_gbps): warn
SLOW_FAIL = 0.2  # ... below this (5x slower than its peers): fail
MIN_LINKS_OF_A_KIND = 4  # fewer links of a kind: no reference, nothing judged slow


@dataclass(frozen=True)
class Link:
    """One directional link and its measured bandwidth (GB/s, 1e9 B/s)."""

    kind: str  # "node_pair", "ring_inter" (ring link across nodes) or "ring_intra" (same node)
    src_rank: int
    dst_rank: int
    src_node: int
    dst_node: int
    gbps: float

    def label(self) -> str:
        if self.kind == "node_pair":
            return f"node {self.src_node} -> node {self.dst_node}"
        return f"rank {self.src_rank} (node {self.src_node}) -> rank {self.dst_rank} (node {self.dst_node})"


def _exchange(peer_send: int, peer_recv: int, send: torch.Tensor, recv: torch.Tensor) -> float:
    """Seconds until this rank has received (Gloo), or both directions are done (NCCL)."""
    ops = [dist.P2POp(dist.isend, send, peer_send), dist.P2POp(dist.irecv, recv, peer_recv)]
    start = time.perf_counter()
    works = dist.batch_isend_irecv(ops)
    works[-1].wait()
    synchronize(recv.device)
    received = time.perf_counter() - start
    for work in works[:-1]:  # a Gloo work waited on twice never returns
        work.wait()
    synchronize(recv.device)
    return received


def _buffers(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    numel = LINK_BYTES[device.type] // 4
    return torch.ones(numel, device=device), torch.empty(numel, device=device)


def measure_ring(device: torch.device) -> list[float]:
    """Collective: every rank's median receive time from rank-1, indexed by rank."""
    rank, world = dist.get_rank(), dist.get_world_size()
    if world < 2:
        return [0.0] * world  # no ring: a rank cannot send to itself
    send, recv = _buffers(device)
    times = []
    for i in range(LINK_WARMUP + LINK_ITERS):
        dist.barrier()
        seconds = _exchange((rank + 1) % world, (rank - 1) % world, send, recv)
        if i >= LINK_WARMUP:
            times.append(seconds)
    return [row[0] for row in gather_floats([statistics.median(times)], device)]


def measure_node_pairs(
    device: torch.device, leaders: list[int], only: set[tuple[int, int]] | None = None
) -> list[list[float]]:
    """Collective: seconds[a][b] for node a -> node b between node leaders (0 where unmeasured):
    every pair up to nodepairs.MATRIX_MAX nodes, a bounded sample of rounds beyond.

    `only`: measure just these node pairs (a < b), in their own rounds (a second look at
    links that seemed slow)."""
    rank, nnodes = dist.get_rank(), len(leaders)
    send, recv = _buffers(device)
    seconds = torch.zeros(nnodes, nnodes, dtype=torch.float64, device=device)
    for pairs in node_pair_rounds(nnodes):
        dist.barrier()  # a round starts when the previous one has finished everywhere
        for a, b in pairs:
            if only is not None and (a, b) not in only:
                continue
            if rank in (leaders[a], leaders[b]):
                me, peer = (a, b) if rank == leaders[a] else (b, a)
                seconds[peer][me] = _pair_seconds(leaders[peer], send, recv)
    dist.all_reduce(seconds)  # each entry was written by exactly one rank
    return seconds.cpu().tolist()


def _pair_seconds(peer: int, send: torch.Tensor, recv: torch.Tensor) -> float:
    times = [_exchange(peer, peer, send, recv) for _ in range(LINK_WARMUP + LINK_ITERS)]
    return statistics.median(times[LINK_WARMUP:])


def ring_links(seconds: list[float], node_of: list[int], size_bytes: int) -> list[Link]:
    """The ring's links from every rank's receive time (rank r received from r-1)."""
    world = len(seconds)
    if world < 2:
        return []
    links = []
    for dst, t in enumerate(seconds):
        src = (dst - 1) % world
        kind = "ring_intra" if node_of[src] == node_of[dst] else "ring_inter"
        links.append(Link(kind, src, dst, node_of[src], node_of[dst], _gbps(size_bytes, t)))
    return links


def pair_links(
    seconds: list[list[float]], leaders: list[int], nodes: list[int], size_bytes: int
) -> list[Link]:
    """The node-pair matrix (rows and columns: positions in `nodes`) as directional links,
    the diagonal and unmeasured pairs left out."""
    return [
        Link("node_pair", leaders[a], leaders[b], nodes[a], nodes[b], _gbps(size_bytes, t))
        for a, row in enumerate(seconds)
        for b, t in enumerate(row)
        if a != b and t > 0
    ]


def _gbps(size_bytes: int, seconds: float) -> float:
    return algbw_gbps(size_bytes, seconds * 1e6)


def reference_gbps(links: list[Link]) -> dict[str, float]:
    """Per kind, what its links reach: the 75th percentile, not the median. One bad node among
    three touches 4 of the 6 directed node pairs (2(N-1) of N(N-1)), so the median link would
    be one of its own; the upper quartile still comes from healthy links for N >= 3."""
    reference = {}
    for kind in sorted({link.kind for link in links}):
        values = sorted(link.gbps for link in links if link.kind == kind)
        # With three or fewer the upper quartile is the fastest link, and one lucky measurement
        # would judge the others (a healthy 3-node ring once showed 0.44x this way). Node pairs
        # have N(N-1) directed links, 6 from three nodes; a ring crosses nodes only N times.
        if len(values) >= MIN_LINKS_OF_A_KIND:
            # A measured value (rounded up), not one interpolated towards the slow ones.
            reference[kind] = values[math.ceil(0.75 * (len(values) - 1))]
    return reference


def slow_links(links: list[Link], warn: float = SLOW_WARN) -> list[tuple[Link, float]]:
    """Links below `warn` x their kind's reference bandwidth, with that ratio."""
    reference = reference_gbps(links)
    return [
        (link, link.gbps / reference[link.kind])
        for link in links
        if reference.get(link.kind, 0) > 0 and link.gbps < warn * reference[link.kind]
    ]


def judge_links(
    links: list[Link], hostnames: dict[int, str], warn: float = SLOW_WARN, fail: float = SLOW_FAIL
) -> list[Finding]:
    """`slow_link`: one finding naming the node when every slow link touches it, else one per link."""
    slow = slow_links(links, warn)
    if not slow:
        return []
    reference = reference_gbps(links)
    severity = Severity.FAIL if min(ratio for _, ratio in slow) < fail else Severity.WARN
    shared = set.intersection(*({link.src_node, link.dst_node} for link, _ in slow))
    if len(shared) == 1 and (len(slow) > 1 or slow[0][0].src_node == slow[0][0].dst_node):
        return [_node_finding(shared.pop(), slow, reference, severity, hostnames)]
    return [_link_finding(link, ratio, reference[link.kind], fail, hostnames) for link, ratio in slow]


def links_of_slow_nodes(findings: list[Finding], device_type: str) -> list[Finding]:
    """On CPUs (Gloo), a node that computes slowly also moves its data slowly: Gloo copies and
    reduces on the CPU. A `slow_link` that names only nodes `straggler_node` names is then that
    straggler's consequence, not a cable: it becomes a note pointing at the straggler, so the user
    is not sent to check a NIC, and nobody is drained twice. On GPUs the NIC and the copy engines
    move the data, so a slow GPU says nothing about its links and both findings stand."""
    if device_type != "cpu":
        return findings
    slow_nodes = {node for f in findings if f.code == "straggler_node" for node in f.nodes}
    return [_as_consequence(f) if _only_slow_nodes(f, slow_nodes) else f for f in findings]


def _only_slow_nodes(finding: Finding, slow_nodes: set[int]) -> bool:
    return finding.code == "slow_link" and bool(finding.nodes) and set(finding.nodes) <= slow_nodes


def _as_consequence(finding: Finding) -> Finding:
    named = ", ".join(map(str, finding.nodes))
    return dataclasses.replace(
        finding,
        severity=Severity.INFO,
        message=f"{finding.message}; node {named} is a straggler_node too, and on CPUs (Gloo) a slow "
        "node moves data slowly: likely its consequence",
        fix="fix the straggler first (see straggler_node); if its links stay slow once it computes at "
        "full speed, check its NIC and link (ethtool, the cable, the switch port)",
    )


def _evidence(slow: list[tuple[Link, float]], reference: dict[str, float]) -> dict:
    return {
        "slow_links": [
            {
                "kind": link.kind,
                "from_rank": link.src_rank,
                "to_rank": link.dst_rank,
                "from_node": link.src_node,
                "to_node": link.dst_node,
                "gbps": link.gbps,
                "ratio_to_reference": ratio,
            }
            for link, ratio in slow
        ],
        "reference_gbps": reference,
    }


def _node_finding(
    node: int,
    slow: list[tuple[Link, float]],
    reference: dict[str, float],
    severity: Severity,
    hostnames: dict,
) -> Finding:
    worst_link, worst = min(slow, key=lambda item: item[1])
    where = f"node {node}" + (f" ({hostnames[node]})" if node in hostnames else "")
    return make_finding(
        "slow_link",
        f"every slow link touches {where}: {len(slow)} link(s) below {SLOW_WARN:.0%} of what their "
        f"peers reach, the worst {worst_link.label()} at {worst_link.gbps:.3f} GB/s "
        f"({worst:.2f}x the reference {reference[worst_link.kind]:.3f} GB/s)",
        nodes=[node],
        severity=severity,
        evidence=_evidence(slow, reference),
        fix=f"check {where}'s NIC and its link (ethtool <iface> for speed and errors, the cable, the "
        "switch port), or drain the node",
    )


def _link_finding(link: Link, ratio: float, reference: float, fail: float, hostnames: dict) -> Finding:
    return make_finding(
        "slow_link",
        f"{link.label()} ran at {link.gbps:.3f} GB/s, {ratio:.2f}x what {link.kind} links reach "
        f"({reference:.3f} GB/s, their 75th percentile)",
        nodes=sorted({link.src_node, link.dst_node}),
        ranks=sorted({link.src_rank, link.dst_rank}),
        severity=Severity.FAIL if ratio < fail else Severity.WARN,
        evidence=_evidence([(link, ratio)], {link.kind: reference}),
        fix="check the NICs, cables and switch ports on the path between these two nodes "
        "(ethtool <iface> on both; the switch's port counters)",
    )
