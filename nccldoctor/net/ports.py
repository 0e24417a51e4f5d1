"""The port mesh: can every node open TCP connections to the ports the backend will listen on?

NCCL's bootstrap and socket transport and Gloo's pairs listen on ephemeral ports
(net.ipv4.ip_local_port_range), on the address of the interface they chose. A firewall that
admits the master port but drops the ephemeral range lets torchrun rendezvous and then hangs
process-group init, the classic "Port blocked -> initialization hangs". So each node listens
on ports sampled across its own ephemeral range (plus the user's --ports) on that address,
and every other node connects to them from its own chosen address, all in parallel with a
short timeout. Store only, before any collective.

Owned here: what each node publishes (Listening, Connected), opening the listeners, the
connect targets, the judgement (`port_blocked`) and the report's `network.ports` entry.
nccldoctor.probes.network moves them through the store.
"""

from __future__ import annotations

import random
import resource
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from nccldoctor.findings import Finding, make_finding
from nccldoctor.net.fanout import PortPlan
from nccldoctor.net.sockets import OPEN, REFUSED, TIMEOUT, Listeners, compress_ports, sample_ports

PORT_SAMPLES = 16  # per node, one from each 1/16 of its ephemeral range
MAX_EXTRA_PORTS = 1024  # --ports beyond this are sampled: every port costs a socket on every peer
CONNECT_TIMEOUT_S = 2.0  # a SYN answered on any sane network in ms; 2 s covers one retransmit


@dataclass
class Listening:
    """What one node listens on for the check (published to the store)."""

    node_rank: int
    address: str
    ephemeral: tuple[int, int]
    sampled: list[int]  # bound in the ephemeral range
    extra: list[int]  # from --ports (bound, or already in use by something that listens)
    extra_sampled_from: int = 0  # >0: --ports named this many ports and `extra` is a sample

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Listening:
        return cls(**{**data, "ephemeral": tuple(data["ephemeral"])})


@dataclass
class Connected:
    """What one node saw connecting to every other node (published to the store)."""

    node_rank: int
    outcomes: list[tuple[int, int, str]] = field(default_factory=list)  # (to node, port, outcome)
    routes: dict[str, str | None] = field(default_factory=dict)  # to node -> local source address

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Connected:
        return cls(
            node_rank=data["node_rank"],
            outcomes=[tuple(o) for o in data["outcomes"]],
            routes=data["routes"],
        )


def extra_ports(ranges: list[tuple[int, int]], rng: random.Random) -> tuple[list[int], int]:
    """The --ports to test; a huge list is sampled evenly (returns the ports, the full count)."""
    ports = sorted({p for low, high in ranges for p in range(low, high + 1)})
    if len(ports) <= MAX_EXTRA_PORTS:
        return ports, 0
    picks = sample_ports(0, len(ports) - 1, MAX_EXTRA_PORTS, rng)
    return sorted(ports[i] for i in picks), len(ports)


def open_listeners(
    node_rank: int,
    address: str,
    ephemeral: tuple[int, int],
    ranges: list[tuple[int, int]],
    rng: random.Random,
) -> tuple[Listeners, Listening]:
    """Listen on sampled ephemeral ports and the user's ports; a taken ephemeral port is re-sampled."""
    extra, full = extra_ports(ranges, rng)
    _raise_fd_limit(PORT_SAMPLES + len(extra))
    listeners = Listeners(address)
    for port in extra:
        listeners.bind(port)  # in use: not ours, but whatever listens there answers the test too
    before = set(listeners.ports)
    listeners.bind_sampled(*ephemeral, PORT_SAMPLES, rng)
    sampled_ports = sorted(set(listeners.ports) - before)
    info = Listening(node_rank, address, ephemeral, sampled_ports, extra, full)
    return listeners, info


def _raise_fd_limit(needed: int) -> None:
    """Each listener (and, on the connecting side, each attempt) is a file descriptor."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed * 4 + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def targets_of(me: int, listening: dict[int, Listening]) -> list[tuple[str, int]]:
    """Every port of every node in `listening` (the peers the plan gives `me`) but its own."""
    return [
        (info.address, port)
        for node, info in listening.items()
        if node != me
        for port in info.sampled + info.extra
    ]


def judge_ports(
    listening: dict[int, Listening], connected: dict[int, Connected], hostnames: dict[int, str]
) -> list[Finding]:
    """One `port_blocked` per destination node whose ports some other node could not reach.

    One pass over every outcome (N*k*16 of them at scale), grouped by destination."""
    failed: dict[int, dict[tuple[int, int], str]] = {}
    for src, seen in connected.items():
        for to, port, outcome in seen.outcomes:
            if outcome != OPEN:
                failed.setdefault(to, {})[(src, port)] = outcome
    return [
        _blocked_finding(listening[dest], failures, listening, hostnames)
        for dest, failures in sorted(failed.items())
        if dest in listening
    ]


def blocks_backend(finding: Finding) -> bool:
    """Blocked ports in the ephemeral range can hang the backend's init; --ports outside it cannot.

    The kernel may hand Gloo or NCCL any ephemeral port, so a blocked user port inside the
    range is as dangerous as a blocked sampled one.
    """
    return finding.code == "port_blocked" and bool(finding.evidence.get("backend_ports_blocked"))


def _blocked_finding(
    info: Listening,
    failed: dict[tuple[int, int], str],
    listening: dict[int, Listening],
    hostnames: dict[int, str],
) -> Finding:
    dest = info.node_rank
    sources = sorted({src for src, _ in failed})
    kinds = Counter(failed.values())
    ephemeral_blocked = sorted({p for (_, p) in failed if p in info.sampled})
    extra_blocked = sorted({p for (_, p) in failed if p in info.extra})
    low, high = info.ephemeral
    backend_blocked = sorted({p for (_, p) in failed if low <= p <= high})
    tested = len(info.sampled) + len(info.extra)
    parts = []
    if ephemeral_blocked:
        which = (
            f"all {len(info.sampled)}"
            if len(ephemeral_blocked) == len(info.sampled)
            else f"{len(ephemeral_blocked)} of {len(info.sampled)} ({compress_ports(ephemeral_blocked)})"
        )
        parts.append(
            f"{which} ports sampled across its ephemeral range {low}-{high}, where NCCL and Gloo listen"
        )
    if extra_blocked:
        inside = (
            " (inside the ephemeral range: the backend may listen there)"
            if any(low <= p <= high for p in extra_blocked)
            else ""
        )
        parts.append(f"--ports {compress_ports(extra_blocked)}{inside}")
    how = "; ".join(f"{n} {_describe(kind)}" for kind, n in kinds.most_common())
    source_addresses = sorted({listening[s].address for s in sources if s in listening})
    return make_finding(
        "port_blocked",
        f"node {dest} ({hostnames.get(dest, '?')}, {info.address}) does not accept connections from "
        f"node(s) {', '.join(map(str, sources))} on {' and '.join(parts)} [{how}] "
        f"(out of {tested} ports tested)",
        nodes=[dest],
        evidence={
            "to_node": dest,
            "address": info.address,
            "from_nodes": sources,
            "outcomes": dict(kinds),
            "ephemeral_range": list(info.ephemeral),
            "ephemeral_blocked": ephemeral_blocked,
            "ports_blocked": extra_blocked,
            "backend_ports_blocked": backend_blocked,
            "ports_tested": tested,
        },
        fix=_fix(dest, info, ephemeral_blocked, extra_blocked, source_addresses),
    )


def _describe(outcome: str) -> str:
    return {
        TIMEOUT: "timed out (dropped: a DROP rule or a filtering firewall)",
        REFUSED: "refused (a REJECT rule: the test was listening)",
    }.get(outcome, outcome)


def _fix(dest: int, info: Listening, ephemeral: list[int], extra: list[int], sources: list[str]) -> str:
    """The firewall rules to run on the destination node."""
    source = f" -s {','.join(sources)}" if sources else ""
    rules = []
    if ephemeral:
        low, high = info.ephemeral
        rules.append(f"iptables -I INPUT -p tcp{source} --dport {low}:{high} -j ACCEPT")
    for part in compress_ports(extra).split(",") if extra else []:
        rules.append(f"iptables -I INPUT -p tcp{source} --dport {part.replace('-', ':')} -j ACCEPT")
    return f"on node {dest}: " + " && ".join(rules) + " (or the same in firewalld / the security group)"


def port_summary(
    listening: dict[int, Listening], connected: dict[int, Connected], plan: PortPlan | None = None
) -> dict[str, Any]:
    """The report's `network.ports` entry: per (from, to) pair, outcome counts.

    A full mesh lists every pair (at most 240); a bounded plan (N*k pairs) lists the pairs
    where some port failed, with `pairs_checked` and `pairs_open` counting the rest."""
    pairs = []
    for src, seen in sorted(connected.items()):
        by_dest: dict[int, Counter] = {}
        for to, _, outcome in seen.outcomes:
            by_dest.setdefault(to, Counter())[outcome] += 1
        for to, counts in sorted(by_dest.items()):
            pairs.append(
                {"from_node": src, "to_node": to, "route_source": seen.routes.get(str(to)), **counts}
            )
    summary: dict[str, Any] = {
        "listening": {str(n): info.to_json() for n, info in sorted(listening.items())},
        "pairs": pairs,
        "connect_timeout_s": CONNECT_TIMEOUT_S,
    }
    if plan is not None:
        summary["plan"] = plan.summary()
        if plan.kind == "bounded":
            failing = [p for p in pairs if set(p) - {"from_node", "to_node", "route_source", OPEN}]
            summary |= {
                "pairs": failing,
                "pairs_checked": len(pairs),
                "pairs_open": len(pairs) - len(failing),
            }
    return summary
