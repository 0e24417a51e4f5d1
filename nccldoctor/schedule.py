"""Which ranks measure a link together, and when: a round-robin tournament of node leaders.

Measuring every node pair one after another costs O(N^2) rounds; measuring all pairs of one
round at once only works if no node is in two pairs at the same time (each pair must have its
links to itself). The circle method (Berger tables) gives N-1 rounds of N/2 disjoint pairs for
even N, and N rounds (one node resting each round) for odd N, with every pair exactly once.
"""

from __future__ import annotations


def round_robin(n: int) -> list[list[tuple[int, int]]]:
    """Rounds of disjoint pairs (a, b), a < b, covering every pair of range(n) exactly once."""
    if n < 2:
        return []
    players: list[int | None] = list(range(n)) + ([None] if n % 2 else [])
    size = len(players)
    rounds = []
    for _ in range(size - 1):
        pairs = []
        for i in range(size // 2):
            a, b = players[i], players[size - 1 - i]
            if a is not None and b is not None:
                pairs.append((min(a, b), max(a, b)))
        rounds.append(sorted(pairs))
        players = [players[0], players[-1], *players[1:-1]]  # fix the first, rotate the rest
    return rounds


def ring_pairs(world_size: int) -> list[tuple[int, int]]:
    """Each rank sends to the next one (rank -> rank+1 mod n): every rank's outgoing link once."""
    return [(r, (r + 1) % world_size) for r in range(world_size)] if world_size > 1 else []
