"""Clocks: every node's wall-clock offset from rank 0's, measured through the rendezvous store.

Logs, NCCL's timestamps, checkpoints' file times and deadlines are compared across nodes by
their wall clocks (time.time, CLOCK_REALTIME), so a node whose clock is seconds off makes every
such comparison wrong. The store is the one channel every node already shares before the
process group exists, so the offset is measured over it, NTP-style:

    node leader                                 rank 0 (the server)
    t0 = clock(); set clock/req/{node}/{r}  ->  wait for it; set clock/resp/{node}/{r} = its clock()
    wait for clock/resp/{node}/{r}; t1 = clock()

Rank 0 read its clock after the request was made and before the answer arrived, so the node's
clock minus rank 0's is (t0 + t1) / 2 - server, give or take half the round trip (t1 - t0) / 2.
Several rounds are made and the tightest round trip wins. Rank 0 serves one node's rounds back
to back: the node asks for round r + 1 as soon as round r's answer arrives, and rank 0 is then
already waiting for exactly that request, so the round trip is two store messages however many
nodes there are (serving round by round across nodes would put every other node's exchange
inside each round trip). Node 0 is the reference: its offset is 0 ± 0 without measuring.

Each leader publishes its result at clock/offset/{node} (JSON); rank 0 reads them all and
judges them (`judge_clocks`: clock_skew). Every wait is bounded by the caller's `remaining_s`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import torch.distributed as dist

from nccldoctor.consistency.majority import node_text
from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.runtime import LaunchEnv, wait_for
from nccldoctor.storeio import get_many
from nccldoctor.units import three_digits

ROUNDS = 8  # a few exchanges of two store messages each: tight enough, cheap at any node count
CLOCK_WARN_S = 1.0
CLOCK_FAIL_S = 30.0
REFERENCE_NODE = 0

Clock = Callable[[], float]  # time.time; tests inject a shifted one


@dataclass(frozen=True)
class ClockSample:
    """One exchange, in the node's clock (t0, t1) and rank 0's (server)."""

    t0: float
    server: float
    t1: float

    @property
    def round_trip_s(self) -> float:
        return self.t1 - self.t0

    @property
    def offset_s(self) -> float:
        """The node's clock minus rank 0's: positive when the node is ahead."""
        return (self.t0 + self.t1) / 2 - self.server


@dataclass(frozen=True)
class ClockOffset:
    """A node's clock minus rank 0's (positive: ahead), true within ± uncertainty_s."""

    offset_s: float
    uncertainty_s: float
    rounds: int  # exchanges made (0: the reference node, not measured)

    @property
    def beyond_doubt_s(self) -> float:
        """The smallest skew the measurement allows: |offset| less its uncertainty (>= 0)."""
        return max(0.0, abs(self.offset_s) - self.uncertainty_s)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ClockOffset:
        return cls(**json.loads(raw))


REFERENCE = ClockOffset(0.0, 0.0, 0)


def best_offset(samples: Iterable[ClockSample]) -> ClockOffset:
    """The offset of the tightest round trip: queueing and scheduling only ever lengthen a
    round trip, so the shortest one bounds the offset best."""
    samples = list(samples)
    if not samples:
        raise ValueError("no clock samples")
    best = min(samples, key=lambda s: s.round_trip_s)
    return ClockOffset(best.offset_s, best.round_trip_s / 2, len(samples))


# -- the store protocol ---------------------------------------------------------------------------
def _req(node: int, r: int) -> str:
    return f"clock/req/{node}/{r}"


def _resp(node: int, r: int) -> str:
    return f"clock/resp/{node}/{r}"


def _offset_key(node: int) -> str:
    return f"clock/offset/{node}"


def serve_clock(
    store: dist.Store,
    nodes: list[int],
    rounds: int,
    remaining_s: Callable[[], float],
    clock: Clock = time.time,
) -> None:
    """Rank 0: answer every node's `rounds` requests with its own clock, one node's rounds back
    to back (see the module's docstring). The reference node is skipped. Raises the store's
    timeout error when a node does not ask before the deadline."""
    for node in nodes:
        if node == REFERENCE_NODE:
            continue
        for r in range(rounds):
            wait_for(store, [_req(node, r)], remaining_s())
            store.set(_resp(node, r), repr(clock()))  # read as late as possible: the tightest bound


def measure_clock(
    store: dist.Store, node: int, rounds: int, remaining_s: Callable[[], float], clock: Clock = time.time
) -> ClockOffset:
    """A node's leader: `rounds` exchanges with rank 0, the tightest wins. Raises the store's
    timeout error when rank 0 does not answer before the deadline."""
    if node == REFERENCE_NODE:
        return REFERENCE
    samples = []
    for r in range(rounds):
        t0 = clock()
        store.set(_req(node, r), "1")
        wait_for(store, [_resp(node, r)], remaining_s())
        t1 = clock()  # the answer is here: fetching its value is outside the round trip
        samples.append(ClockSample(t0, float(store.get(_resp(node, r))), t1))
    return best_offset(samples)


def publish_offset(store: dist.Store, node: int, offset: ClockOffset) -> None:
    store.set(_offset_key(node), offset.to_json())


def read_offsets(
    store: dist.Store, nodes: Iterable[int], remaining_s: Callable[[], float]
) -> dict[int, ClockOffset]:
    """Rank 0: every node's published offset (the reference node's is 0 ± 0), waited for
    together and fetched in one round trip."""
    measured = [n for n in nodes if n != REFERENCE_NODE]
    keys = [_offset_key(n) for n in measured]
    offsets = {REFERENCE_NODE: REFERENCE}
    if keys:
        wait_for(store, keys, remaining_s())
        offsets |= {
            n: ClockOffset.from_json(raw) for n, raw in zip(measured, get_many(store, keys), strict=True)
        }
    return dict(sorted(offsets.items()))


def exchange_clocks(
    store: dist.Store,
    launch: LaunchEnv,
    remaining_s: Callable[[], float],
    rounds: int = ROUNDS,
    clock: Clock = time.time,
) -> dict[int, ClockOffset]:
    """This rank's part: rank 0 serves and returns every node's offset; another node's leader
    (local rank 0) measures, publishes and returns its own; the other ranks take no part (one
    clock per node) and return {}."""
    nodes = list(range(launch.nnodes))
    if launch.rank == 0:
        serve_clock(store, nodes, rounds, remaining_s, clock)
        return read_offsets(store, nodes, remaining_s)
    if launch.local_rank != 0 or launch.node_rank == REFERENCE_NODE:
        return {}
    offset = measure_clock(store, launch.node_rank, rounds, remaining_s, clock)
    publish_offset(store, launch.node_rank, offset)
    return {launch.node_rank: offset}


# -- the judge ------------------------------------------------------------------------------------
def judge_clocks(
    offsets: Mapping[int, ClockOffset],
    hostnames: Mapping[int, str],
    warn_s: float = CLOCK_WARN_S,
    fail_s: float = CLOCK_FAIL_S,
) -> list[Finding]:
    """clock_skew for the nodes whose clock is off rank 0's by more than `warn_s` beyond the
    measurement's uncertainty; fail for those beyond `fail_s` (one finding per severity)."""
    skewed = {n: o for n, o in offsets.items() if n != REFERENCE_NODE and o.beyond_doubt_s > warn_s}
    by_severity: dict[Severity, list[int]] = {}
    for node, offset in sorted(skewed.items()):
        severity = Severity.FAIL if offset.beyond_doubt_s > fail_s else Severity.WARN
        by_severity.setdefault(severity, []).append(node)
    reference_suspect = len(offsets) > 2 and _all_one_way(offsets, skewed)
    return [
        _skew_finding(nodes, severity, offsets, hostnames, warn_s, fail_s, reference_suspect)
        for severity, nodes in sorted(by_severity.items(), key=lambda item: item[0] != Severity.FAIL)
    ]


def _all_one_way(offsets: Mapping[int, ClockOffset], skewed: Mapping[int, ClockOffset]) -> bool:
    """Every other node is off, and in the same direction: then rank 0's clock is the odd one."""
    others = [n for n in offsets if n != REFERENCE_NODE]
    signs = {skewed[n].offset_s > 0 for n in others if n in skewed}
    return len(skewed) == len(others) and len(signs) == 1


def _skew_finding(
    nodes: list[int],
    severity: Severity,
    offsets: Mapping[int, ClockOffset],
    hostnames: Mapping[int, str],
    warn_s: float,
    fail_s: float,
    reference_suspect: bool,
) -> Finding:
    limit = fail_s if severity is Severity.FAIL else warn_s
    said = "; ".join(_describe(n, offsets[n], hostnames) for n in nodes)
    return make_finding(
        "clock_skew",
        f"{said} (more than {_duration(limit)} beyond the measurement's uncertainty): logs, timestamps "
        "and deadlines compared across nodes are off by that much",
        nodes=nodes,
        severity=severity,
        evidence={
            "reference": {"node": REFERENCE_NODE, "hostname": hostnames.get(REFERENCE_NODE, "?")},
            "warn_s": warn_s,
            "fail_s": fail_s,
            "nodes": {n: {"hostname": hostnames.get(n, "?"), **asdict(offsets[n])} for n in nodes},
        },
        fix=_fix(nodes, hostnames, reference_suspect),
    )


def _describe(node: int, offset: ClockOffset, hostnames: Mapping[int, str]) -> str:
    """'node 2 (host2) is 5.02 s ± 0.3 ms ahead of rank 0's clock'."""
    way = "ahead of" if offset.offset_s > 0 else "behind"
    amount = f"{_duration(abs(offset.offset_s))} ± {_duration(offset.uncertainty_s)}"
    return f"{node_text(node, hostnames)} is {amount} {way} rank 0's clock"


def _fix(nodes: list[int], hostnames: Mapping[int, str], reference_suspect: bool) -> str:
    where = ", ".join(node_text(n, hostnames) for n in nodes)
    fix = (
        f"on {where}: check the time service with `chronyc tracking` (or `timedatectl status`: "
        "System clock synchronized); enable NTP (chrony, or `timedatectl set-ntp true`) and step "
        "the clock now (`chronyc makestep`)"
    )
    if reference_suspect:  # one wrong clock on rank 0 shows as every other node being off
        fix += (
            f"; every other node is off the same way, so check {node_text(REFERENCE_NODE, hostnames)} first"
        )
    return fix


def _duration(seconds: float) -> str:
    """5.0213 -> '5.02 s', 0.0003 -> '0.3 ms', 0.000012 -> '12 µs': three significant digits
    (milliseconds down to a tenth: the usual unit of a store's round trip)."""
    if seconds >= 1:
        return f"{three_digits(seconds)} s"
    if seconds >= 1e-4:
        return f"{three_digits(seconds * 1e3)} ms"
    return f"{three_digits(seconds * 1e6)} µs"
