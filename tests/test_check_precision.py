"""The element check in low precision at scale: pure functions, no process group.

bf16 holds integers exactly up to 256 and fp16 up to 2048, so a reduction pattern whose sums
pass those limits can only be checked with a tolerance, and at 128 ranks that tolerance grew
past the largest value (any output passed). These pin that every wrong element is caught.
"""

import pytest
import torch

from nccldoctor.config import CollectiveOptions
from nccldoctor.probes.collectives import REGISTRY

WORLDS = [8, 128, 1024]
DTYPES = ["bfloat16", "float16"]


def probe(dtype: str, op: str, name: str = "all_reduce"):
    return REGISTRY[name](CollectiveOptions(dtype=dtype, op=op))


def window(world: int) -> int:
    """Enough elements that every rank's turn comes round (a few times)."""
    return 4 * world


def tolerance_of(p, expected: torch.Tensor) -> torch.Tensor:
    """The tolerance as a per-element tensor, whichever form `tolerance` returns."""
    return torch.as_tensor(p.tolerance(expected), dtype=torch.float64).expand_as(expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("op", ["sum", "avg", "min", "max"])
def test_tolerance_stays_below_the_largest_expected_value(dtype, world, op):
    p = probe(dtype, op)
    expected = p.reduce_patterns(window(world), 0, world, "cpu")
    assert float(expected.max()) > 0
    assert float(tolerance_of(p, expected).max()) < float(expected.max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("world", WORLDS)
def test_sums_are_exact_in_the_dtype_so_the_tolerance_is_zero(dtype, world):
    p = probe(dtype, "sum")
    expected = p.reduce_patterns(window(world), 0, world, "cpu")
    limit = 2 / torch.finfo(getattr(torch, dtype)).eps  # the largest run of exact integers
    assert float(expected.max()) <= limit
    assert torch.equal(expected.to(getattr(torch, dtype)).double(), expected)  # the sum round-trips
    assert p.tolerance(expected) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("op", ["sum", "avg"])
def test_one_rank_one_element_off_by_one_is_caught_for_every_rank(dtype, world, op):
    """Rank r's input off by one at an element where r contributes: the output must differ."""
    p = probe(dtype, op)
    numel = window(world)
    expected = p.reduce_patterns(numel, 0, world, "cpu")
    torch_dtype = getattr(torch, dtype)
    for rank in range(world):
        mine = p.pattern(rank, numel, 0, "cpu", world_size=world).double()
        (spots,) = torch.nonzero(mine > 0, as_tuple=True)
        assert len(spots) > 0, f"rank {rank} contributes nothing in {numel} elements"
        j = int(spots[0])
        wrong = expected.clone()
        wrong[j] -= 1.0 / world if op == "avg" else 1.0  # rank r sent one less
        output = wrong.to(torch_dtype)  # what the collective would deliver
        bad = p._mismatch(output, expected)
        assert bad.tolist() == [i == j for i in range(numel)], (rank, j)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("op", ["min", "max"])
def test_every_rank_is_the_only_extreme_somewhere(dtype, world, op):
    """min/max: each rank alone holds the result at some element, so its errors show."""
    p = probe(dtype, op)
    numel = window(world)
    parts = torch.stack([p.pattern(r, numel, 0, "cpu", world_size=world).double() for r in range(world)])
    extreme = parts.min(dim=0).values if op == "min" else parts.max(dim=0).values
    holders = parts == extreme
    alone = holders.sum(dim=0) == 1
    assert set(torch.nonzero(holders[:, alone], as_tuple=True)[0].tolist()) == set(range(world))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("op", ["sum", "avg", "min", "max", "prod"])
def test_correct_outputs_pass(dtype, world, op):
    """The exact answer, rounded to the dtype as the collective delivers it, is never wrong."""
    p = probe(dtype, op, "reduce_scatter")
    expected = p.reduce_patterns(window(world), 3, world, "cpu")
    assert not bool(p._mismatch(expected.to(getattr(torch, dtype)), expected).any())


def test_small_fp32_worlds_keep_the_dense_pattern():
    """Up to the exact limit every rank contributes to every element (no sparsity needed)."""
    p = probe("float32", "sum")
    parts = [p.pattern(r, 64, 0, "cpu", world_size=8) for r in range(8)]
    assert all(bool((part > 0).all()) for part in parts)
