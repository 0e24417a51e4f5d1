"""Which nodes are the odd ones out? Every consistency check compares a value per node."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Majority:
    majority: Hashable | None  # the value most nodes have; None on a tie
    odd: list[int]  # nodes whose value is not the majority's (every node on a tie)
    tie: bool  # no value is held by more nodes than every other: no node can be called odd
    groups: dict[Hashable, list[int]] = field(default_factory=dict)  # value -> its nodes

    @property
    def agree(self) -> bool:
        return len(self.groups) <= 1


def odd_ones_out(values: Mapping[int, Hashable]) -> Majority:
    groups: dict[Hashable, list[int]] = {}
    for node in sorted(values):
        groups.setdefault(values[node], []).append(node)
    if len(groups) <= 1:
        return Majority(next(iter(groups), None), [], False, groups)
    ranked = sorted(groups.items(), key=lambda kv: len(kv[1]), reverse=True)
    if len(ranked[0][1]) == len(ranked[1][1]):
        return Majority(None, sorted(values), True, groups)
    value, _ = ranked[0]
    return Majority(value, sorted(n for n in values if values[n] != value), False, groups)
