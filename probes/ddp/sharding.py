"""Training-side sharding: do the ranks' DistributedSampler shards split the data, and do the
ranks' RNG streams differ?

Before the measured steps every rank builds the benchmark's sampler (`make_sampler`, the one
training uses) over an index dataset of about SAMPLER_ITEMS items, with the rank and world size
of the process group, and lists its shard for epochs 0 and 1. Rank 0 gets every shard and
checks (`judge_sampler`, pure):
- the shards are disjoint and together cover every index, apart from DistributedSampler's own
  padding (drop_last False: the first items of the epoch's order repeat at its end until the
  length divides by the world size) or dropping (drop_last True: the tail of the order);
- with shuffle on, set_epoch changed every rank's order from epoch 0 to epoch 1.
Else `sampler_overlap` [fail]: ranks training on the same samples, samples no rank sees, or
every epoch in the same order.

Each rank also draws a few numbers from its torch RNG right after the benchmark seeds it with
SEED + rank, without consuming the stream (`rng_draws`); two ranks that drew the same numbers
(`judge_rng`) would draw the same random batches, dropout masks and augmentations:
`rng_identical` [warn]. A code of its own, and a warn: the partition and the gradient averaging
are still right (the replicas stay identical, nothing is computed wrong), only the ranks'
randomness is correlated, and its cause is the per-rank seed, not the sampler, whose seed must
be the same on every rank.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sized
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from nccldoctor.findings import Finding, make_finding

SAMPLER_ITEMS = 10_000  # about this many indices per epoch are gathered: tens of kB
EPOCHS = (0, 1)  # set_epoch must change the order between them
RNG_DRAWS = 4  # 63-bit draws per rank: equal by chance never
EXAMPLES = 5  # indices named in a message
CHANCE = 1e-6  # an order that a shuffle repeats this often by chance is not called unchanged


def make_sampler(dataset: Sized, seed: int, drop_last: bool) -> DistributedSampler:
    """The benchmark's sampler: shuffled, the same seed on every rank (every shard is cut from
    one permutation), and the process group's rank and world size: what the job really has."""
    return DistributedSampler(
        dataset,  # type: ignore[arg-type]  # only len() is used
        num_replicas=dist.get_world_size(),
        rank=dist.get_rank(),
        shuffle=True,
        seed=seed,
        drop_last=drop_last,
    )


def sampler_items(world: int) -> int:
    """About SAMPLER_ITEMS, one more than a multiple of the world size: DistributedSampler then
    pads every shard but rank 0's with a repeated index, so every run tests the padding rule."""
    return max(1, SAMPLER_ITEMS // world) * world + 1


def collect_shards(seed: int) -> dict[str, Any]:
    """This rank's shard of an index dataset for each of EPOCHS (drop_last False: padded), and
    the dataset's size."""
    size = sampler_items(dist.get_world_size())
    sampler = make_sampler(range(size), seed, drop_last=False)
    shards = []
    for epoch in EPOCHS:
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
    return {"size": size, "shards": shards}


def rng_draws() -> list[int]:
    """The first draws of this rank's torch RNG, as training would get them; fork_rng puts the
    state back, so the benchmark's own stream is not shifted."""
    with torch.random.fork_rng(devices=[]):
        return torch.randint(2**62, (RNG_DRAWS,)).tolist()


# -- rank 0: the rules (pure) --------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What DistributedSampler promises for `size` items over `world` ranks."""

    size: int
    world: int
    drop_last: bool

    @property
    def per_rank(self) -> int:
        # torch: ceil((size - world) / world) when dropping, which is size // world
        return self.size // self.world if self.drop_last else math.ceil(self.size / self.world)

    @property
    def padded(self) -> int:
        return max(0, self.per_rank * self.world - self.size)

    @property
    def dropped(self) -> int:
        return max(0, self.size - self.per_rank * self.world)


@dataclass
class EpochCheck:
    """One epoch's shards against the layout: what is wrong, if anything."""

    wrong_sizes: dict[int, int] = field(default_factory=dict)  # rank -> its shard's length
    shared: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # rank pair -> indices
    uncovered: list[int] = field(default_factory=list)  # beyond what drop_last may drop
    outside: list[int] = field(default_factory=list)  # not an index of the dataset

    @property
    def ok(self) -> bool:
        return not (self.wrong_sizes or self.shared or self.uncovered or self.outside)

    @property
    def ranks(self) -> list[int]:
        return sorted(set(self.wrong_sizes) | {r for pair in self.shared for r in pair})


def padding_positions(shards: list[list[int]], layout: Layout) -> set[tuple[int, int]]:
    """(rank, slot) of each item that is DistributedSampler's padding, exactly: rank r's slot i
    holds position i * world + r of the epoch's order, and position p >= size must repeat
    position (p - size) % size. Nothing is padding when a shard has the wrong length."""
    if any(len(shard) != layout.per_rank for shard in shards):
        return set()
    order = [shards[p % layout.world][p // layout.world] for p in range(layout.per_rank * layout.world)]
    return {
        (p % layout.world, p // layout.world)
        for p in range(layout.size, len(order))
        if order[p] == order[(p - layout.size) % layout.size]
    }


def check_epoch(shards: list[list[int]], layout: Layout) -> EpochCheck:
    check = EpochCheck()
    check.wrong_sizes = {r: len(s) for r, s in enumerate(shards) if len(s) != layout.per_rank}
    padding = padding_positions(shards, layout)
    holders: dict[int, list[int]] = defaultdict(list)  # index -> ranks holding it (padding aside)
    for rank, shard in enumerate(shards):
        for slot, index in enumerate(shard):
            if (rank, slot) not in padding:
                holders[index].append(rank)
    shared: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index in sorted(holders):
        for pair in sorted(set(itertools.combinations(holders[index], 2))):
            shared[pair].append(index)  # (r, r): one rank holds it twice
    check.shared = dict(shared)
    check.outside = sorted(i for i in holders if not 0 <= i < layout.size)
    missing = [i for i in range(layout.size) if i not in holders]
    check.uncovered = missing if len(missing) > layout.dropped else []
    return check


def unchanged_ranks(first: list[list[int]], second: list[list[int]], size: int) -> list[int]:
    """Ranks whose shard came in the same order in both epochs, when that is no accident: a
    shuffle of `size` items keeps k given places with chance (size-k)!/size!, so a tiny
    dataset's shards are not judged (the check's 10,000 items always are)."""
    same = [r for r, (a, b) in enumerate(zip(first, second, strict=False)) if a == b]
    kept = len({index for r in same for index in first[r]})
    log_chance = -sum(math.log(size - i) for i in range(min(kept, size)))
    return same if log_chance < math.log(CHANCE) else []


def judge_sampler(
    epochs: dict[int, list[list[int]]], size: int, job, *, drop_last: bool = False, shuffle: bool = True
) -> tuple[list[Finding], dict[str, Any]]:
    """`epochs`: epoch -> every rank's indices, by rank. `sampler_overlap` findings and the
    report's `sampler` part. `job` names nodes (node_of, nodes_of)."""
    world = len(next(iter(epochs.values())))
    layout = Layout(size, world, drop_last)
    checks = {epoch: check_epoch(shards, layout) for epoch, shards in epochs.items()}
    compared = sorted(epochs)[:2]
    judged = shuffle and len(compared) == 2
    unchanged = unchanged_ranks(*(epochs[e] for e in compared), size) if judged else []
    findings = partition_findings(checks, layout, job) + order_findings(unchanged, compared, job)
    section = {
        "dataset_size": size,
        "world": world,
        "per_rank": layout.per_rank,
        "padded": layout.padded,
        "dropped": layout.dropped,
        "drop_last": drop_last,
        "shuffle": shuffle,
        "epochs_compared": compared,
        "order_changed": not unchanged if shuffle else None,
        "overlapping_ranks": [list(pair) for pair in sorted({p for c in checks.values() for p in c.shared})],
        "uncovered": next((c.uncovered[:EXAMPLES] for c in checks.values() if c.uncovered), []),
        "verdict": "fail" if findings else "ok",
    }
    return findings, section


def partition_findings(checks: dict[int, EpochCheck], layout: Layout, job) -> list[Finding]:
    """One finding for the epochs whose shards do not split the data, worded from the first
    (a broken layout breaks every epoch alike: one finding, not one per epoch)."""
    bad = {epoch: check for epoch, check in checks.items() if not check.ok}
    if not bad:
        return []
    check = next(iter(bad.values()))
    ranks = sorted({r for c in bad.values() for r in c.ranks})
    where = f"epoch{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}"
    message = (
        f"DistributedSampler's shards over {layout.size} items for {layout.world} ranks "
        f"({where}) do not split the data: " + "; ".join(describe(check, layout))
    )
    evidence = {
        "per_rank": layout.per_rank,
        "padded": layout.padded,
        "epochs": {
            str(e): {
                "shared": {f"{a}-{b}": len(indices) for (a, b), indices in c.shared.items()},
                "uncovered": len(c.uncovered),
                "wrong_sizes": c.wrong_sizes,
                "outside": c.outside[:EXAMPLES],
            }
            for e, c in bad.items()
        },
    }
    return [
        make_finding("sampler_overlap", message, ranks=ranks, nodes=job.nodes_of(ranks), evidence=evidence)
    ]


def describe(check: EpochCheck, layout: Layout) -> list[str]:
    """The problems of one epoch in words, a few examples each."""
    parts = [f"rank {r} has {n} indices, not {layout.per_rank}" for r, n in sorted(check.wrong_sizes.items())]
    for (a, b), indices in list(check.shared.items())[:4]:
        who = f"rank {a} holds" if a == b else f"ranks {a} and {b} share"
        parts.append(f"{who} {_count(indices)} ({_examples(indices)}) beyond the padding")
    if len(check.shared) > 4:
        parts.append(f"{len(check.shared) - 4} more overlapping rank pairs")
    if check.uncovered:
        dropped = f" (drop_last may drop {layout.dropped})" if layout.dropped else ""
        parts.append(f"{_count(check.uncovered)} on no rank{dropped}: {_examples(check.uncovered)}")
    if check.outside:
        parts.append(f"indices outside the dataset: {_examples(check.outside)}")
    return parts


def order_findings(unchanged: list[int], compared: list[int], job) -> list[Finding]:
    """Its own finding: the shards may split the data and still repeat every epoch."""
    if not unchanged:
        return []
    first, second = compared
    return [
        make_finding(
            "sampler_overlap",
            f"set_epoch({second}) did not change the order of the shuffled shard on rank(s) "
            f"{', '.join(map(str, unchanged))}: epoch {second} repeats epoch {first}, so every epoch "
            "sees the same batches",
            ranks=unchanged,
            nodes=job.nodes_of(unchanged),
            evidence={"epochs_compared": compared, "unchanged_ranks": unchanged},
            fix="Call sampler.set_epoch(epoch) on every rank at the start of every epoch, before "
            "iterating the DataLoader.",
        )
    ]


def judge_rng(draws: list[list[int]], job) -> tuple[list[Finding], dict[str, Any]]:
    """`draws`: each rank's first RNG draws, by rank. Groups of ranks that drew the same ones."""
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for rank, values in enumerate(draws):
        groups[tuple(values)].append(rank)
    identical = [ranks for ranks in groups.values() if len(ranks) > 1]
    section = {
        "draws": len(draws[0]) if draws else 0,
        "identical": identical,
        "verdict": "warn" if identical else "ok",
    }
    if not identical:
        return [], section
    ranks = sorted(r for group in identical for r in group)
    said = "; ".join(f"ranks {', '.join(map(str, group))}" for group in identical[:4])
    finding = make_finding(
        "rng_identical",
        f"the per-rank torch RNG streams are identical on {said} (the same first {section['draws']} "
        "draws after seeding): those ranks draw the same random numbers (dropout masks, sampled "
        "batches, augmentations)",
        ranks=ranks,
        nodes=job.nodes_of(ranks),
        evidence={"identical": identical},
    )
    return [finding], section


def _examples(indices: list[int]) -> str:
    shown = ", ".join(map(str, indices[:EXAMPLES]))
    return shown + (", ..." if len(indices) > EXAMPLES else "")


def _count(indices: list[int]) -> str:
    return f"{len(indices)} index" if len(indices) == 1 else f"{len(indices)} indices"
