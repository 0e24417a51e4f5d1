"""Which nodes are the odd ones out: the one rule every consistency check names nodes by.

A value held by more than half of the nodes is the majority, and every node holding something
else is odd. Without such a value (two nodes that differ, or three groups of two) no node can be
called the odd one: `tie` says so, and the judge lists each node's value instead.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Majority:
    majority: Hashable | None  # the value more than half of the nodes hold; None on a tie
    odd: list[int]  # nodes whose value is not the majority's, ascending; [] on a tie
    tie: bool  # the nodes differ and no value is held by more than half of them
    # value -> its nodes (ascending), the most common value first, then by lowest node
    groups: dict[Hashable, list[int]] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        """Every node holds the same value (or there are no nodes)."""
        return len(self.groups) <= 1

    @property
    def differing(self) -> list[int]:
        """The nodes to name: the odd ones, or every node on a tie (any of them may be odd)."""
        if self.tie:
            return sorted(node for nodes in self.groups.values() for node in nodes)
        return self.odd


def odd_ones_out(values: Mapping[int, Hashable]) -> Majority:
    """node -> value: the majority value, the odd nodes, and every value's nodes."""
    groups = _groups(values)
    if not groups:
        return Majority(majority=None, odd=[], tie=False, groups={})
    top, top_nodes = next(iter(groups.items()))
    # strictly more than half: a plurality (3 of 8) would call 5 nodes odd on thin evidence
    if 2 * len(top_nodes) > len(values):
        odd = sorted(node for node, value in values.items() if value != top)
        return Majority(majority=top, odd=odd, tie=False, groups=groups)
    return Majority(majority=None, odd=[], tie=True, groups=groups)


def _groups(values: Mapping[int, Hashable]) -> dict[Hashable, list[int]]:
    """value -> sorted nodes, largest group first, ties broken by the group's lowest node."""
    groups: dict[Hashable, list[int]] = {}
    for node in sorted(values):
        groups.setdefault(values[node], []).append(node)
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[1][0]))
    return dict(ranked)


def node_text(node: int, hostnames: Mapping[int, str]) -> str:
    """How every consistency finding names a node: "node 2 (gpu-c)"."""
    return f"node {node} ({hostnames.get(node, '?')})"
