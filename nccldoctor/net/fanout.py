"""Which node checks which: the port check's fan-out, bounded beyond a small cluster.

Every node connecting to every other is N(N-1) node pairs (x 16+ ports each): 16 million
connections at 1,024 nodes. Up to `FULL_MESH_MAX` nodes the check stays a full mesh (every
pair tried, as small clusters are debugged pair by pair). Beyond it each node checks a
bounded set of peers, chosen so that every node is both checking and checked:

- ring neighbours: offsets +1 and -1;
- tournament partners: offsets +2, +4, ... (+2^j mod N, j < log2 N): the rounds of a
  dissemination barrier. XOR partners (a hypercube) give the same log2 N rounds only when N
  is a power of two; the offsets give them for every N;
- `RANDOM_PEERS` random cycles through all nodes, from one seed (the run's id; `seed_of`),
  so every node computes the same plan from 4 bytes rather than reading N*k pairs.

Each round is a permutation (every node sends one check and receives one), so every node's
out- and in-degree is at least the number of distinct offsets (`bounded_offsets`: log2 N + 1,
or log2 N when N - 1 is itself a power of two), at most that plus `RANDOM_PEERS`.
Connections grow as N*k, k <= log2 N + 3 (13 at 1,024 nodes), and a node whose inbound ports
are all blocked is seen failing by at least log2 N peers.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from functools import cached_property

FULL_MESH_MAX = 16  # nodes: up to here every pair is tried (16 x 15 = 240 pairs)
RANDOM_PEERS = 2  # random cycles beyond the ring and tournament rounds

Pair = tuple[int, int]  # (checking node, checked node)


@dataclass(frozen=True)
class PortPlan:
    """The rounds of the check; each round maps every node to one peer it connects to."""

    nnodes: int
    kind: str  # "full_mesh" or "bounded"
    rounds: tuple[tuple[Pair, ...], ...]
    seed: int

    @cached_property
    def pairs(self) -> list[Pair]:
        """Every (src, dst) once: a pair repeated by a random round is checked once."""
        return sorted({pair for round_ in self.rounds for pair in round_})

    @cached_property
    def _targets(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {n: [] for n in range(self.nnodes)}
        for src, dst in self.pairs:
            out[src].append(dst)
        return out

    @cached_property
    def _sources(self) -> dict[int, list[int]]:
        into: dict[int, list[int]] = {n: [] for n in range(self.nnodes)}
        for src, dst in self.pairs:
            into[dst].append(src)
        return into

    def targets(self, node: int) -> list[int]:
        """The nodes `node` connects to."""
        return self._targets[node]

    def sources(self, node: int) -> list[int]:
        """The nodes that connect to `node` (its listeners stay open until they are done)."""
        return self._sources[node]

    def summary(self) -> dict[str, int | str]:
        """The report's `network.ports.plan`: what was checked, without the N*k pairs."""
        return {
            "kind": self.kind,
            "nodes": self.nnodes,
            "rounds": len(self.rounds),
            "pairs": len(self.pairs),
            "min_out": min((len(v) for v in self._targets.values()), default=0),
            "min_in": min((len(v) for v in self._sources.values()), default=0),
            "seed": self.seed,
        }


def port_plan(
    nnodes: int, seed: int, full_mesh_max: int = FULL_MESH_MAX, random_peers: int = RANDOM_PEERS
) -> PortPlan:
    """Who checks whom among `nnodes` nodes; a pure function of its arguments."""
    if nnodes <= full_mesh_max:
        rounds = tuple(_shift(nnodes, offset) for offset in range(1, nnodes))
        return PortPlan(nnodes, "full_mesh", rounds, seed)
    rng = random.Random(seed)
    rounds = tuple(_shift(nnodes, offset) for offset in bounded_offsets(nnodes))
    rounds += tuple(_random_cycle(nnodes, rng) for _ in range(random_peers))
    return PortPlan(nnodes, "bounded", rounds, seed)


def bounded_offsets(nnodes: int) -> list[int]:
    """+2^j (j < log2 N, +1 first: the ring) and -1, all distinct modulo N."""
    powers = [1 << j for j in range(math.ceil(math.log2(nnodes)))]
    return sorted(set(powers) | {nnodes - 1})


def _shift(nnodes: int, offset: int) -> tuple[Pair, ...]:
    return tuple((node, (node + offset) % nnodes) for node in range(nnodes))


def _random_cycle(nnodes: int, rng: random.Random) -> tuple[Pair, ...]:
    """One cycle through every node in a random order: a permutation with no fixed point."""
    order = list(range(nnodes))
    rng.shuffle(order)
    return tuple(sorted((order[i], order[(i + 1) % nnodes]) for i in range(nnodes)))


def seed_of(run_id: str, rng: random.Random) -> int:
    """The plan's seed: from the run's id (TORCHELASTIC_RUN_ID, the same on every node) when it
    names the run, else drawn; rank 0 publishes it and the report records it, so a plan can
    be reproduced. torchrun's static rendezvous calls every run "none": drawn, so that
    repeated runs check different random pairs."""
    if run_id and run_id != "none":
        return zlib.crc32(run_id.encode())
    return rng.getrandbits(32)
