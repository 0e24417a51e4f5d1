"""What the six collective probes share: sizes, buffers, the timed loop, the check, the gather.

A collective probe module fills in only what differs: how a total size splits into
per-rank counts, which torch.distributed call to make on which buffers, and what each
rank must hold afterwards. nccl-tests' conventions are kept: sizes are total buffer sizes,
`count` is the per-call element count it prints, and in-place means the input is the
rank's own slice of the output (all_gather) or the output is a slice of the input
(reduce_scatter).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.distributed as dist

from nccldoctor.bandwidth import algbw_gbps, busbw_gbps
from nccldoctor.findings import make_finding
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.rows import Row
from nccldoctor.stats import across_ranks
from nccldoctor.timing import seconds_per_op, synchronize
from nccldoctor.units import format_bytes, format_size

REDUCE_OPS = {
    "sum": dist.ReduceOp.SUM,
    "prod": dist.ReduceOp.PRODUCT,
    "min": dist.ReduceOp.MIN,
    "max": dist.ReduceOp.MAX,
    "avg": dist.ReduceOp.AVG,
}
OUT_OF_PLACE, IN_PLACE = False, True
SUM_VALUE_MAX = 4  # the largest value one rank adds to one element of a sum or average
AVG_CONTRIBUTORS = 4  # at most this many ranks send non-zero to one element of an average

# torch 2.13 renamed the tensor forms (the old names warn); older torch has only the old ones.
all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
reduce_scatter_single = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


@dataclass(frozen=True)
class Layout:
    """How one total size maps onto one call's buffers (numbers of elements)."""

    size_bytes: int  # the total buffer size reported, rounded down to what the call moves
    count: int  # the element count nccl-tests prints for this collective
    send_numel: int
    recv_numel: int


@dataclass
class Call:
    """One ready-to-run collective: `run()` is what the timed loop calls."""

    run: Callable[[], object]
    inputs: torch.Tensor  # filled with this rank's pattern before the checked call
    output: torch.Tensor  # compared with `expected` after it


class CollectiveProbe(Phase):
    """One collective over every size of the run: a phase of its own, also run alone by sweep
    workers and the DDP benchmark."""

    modes: ClassVar[tuple[bool, ...]] = (OUT_OF_PLACE, IN_PLACE)
    reduces: ClassVar[bool] = False  # uses --op
    rooted: ClassVar[bool] = False  # uses --root
    min_world_size: ClassVar[int] = 1

    def __init__(self, options) -> None:
        self.config = options  # CollectiveOptions: sizes, dtype, op, root, iters, check

    # -- what a collective module fills in --------------------------------------------------
    @abstractmethod
    def layout(self, size_bytes: int, itemsize: int, world_size: int) -> Layout: ...

    @abstractmethod
    def make_call(
        self,
        send: torch.Tensor,
        recv: torch.Tensor,
        layout: Layout,
        inplace: bool,
        rank: int,
        world_size: int,
    ) -> Call:
        """Bind the collective to views of the preallocated `send`/`recv` storage."""

    @abstractmethod
    def expected(self, layout: Layout, rank: int, world_size: int, device: torch.device) -> torch.Tensor:
        """What this rank's output must hold, in float64/int64, given every rank's pattern."""

    def output_sources(self, rank: int, world_size: int) -> list[int] | None:
        """The rank each equal chunk of the output came from (None: reductions mix all)."""
        return None

    # -- the common life cycle ---------------------------------------------------------------
    def planned_steps(self, ctx: PhaseContext) -> int:
        world_size = ctx.job.world_size
        return len(self._plan(world_size)) if world_size >= self.min_world_size else 0

    def _plan(self, world_size: int) -> list[tuple[Layout, bool]]:
        itemsize = self.config.torch_dtype.itemsize
        layouts = [self.layout(size, itemsize, world_size) for size in self.config.sizes()]
        unique = {lay.size_bytes: lay for lay in layouts if lay.count > 0}
        return [(lay, mode) for lay in unique.values() for mode in self.modes]

    def run(self, ctx: PhaseContext) -> PhaseResult:
        job = ctx.job
        if job.world_size < self.min_world_size:
            return PhaseResult(
                findings=[
                    make_finding(
                        "probe_skipped",
                        f"{self.name} needs {self.min_world_size} ranks; this job has {job.world_size}",
                        evidence={"probe": self.name, "world_size": job.world_size},
                    )
                ]
            )
        plan = self._plan(job.world_size)
        if not plan:
            smallest = self.config.torch_dtype.itemsize * job.world_size
            return PhaseResult(
                findings=[
                    make_finding(
                        "probe_skipped",
                        f"{self.name} measured nothing: every size from --min-bytes to "
                        f"--max-bytes is below one {self.config.dtype} element per rank "
                        f"({format_bytes(smallest)} with {job.world_size} ranks)",
                        evidence={"probe": self.name, "smallest_size_bytes": smallest},
                        fix=f"raise --max-bytes to at least {format_size(smallest)}",
                    )
                ]
            )
        send, recv = self._allocate(plan, job.device)
        rows = []
        for layout, inplace in plan:
            ctx.step(
                f"{self.name} {format_size(layout.size_bytes)} {'in-place' if inplace else 'out-of-place'}"
            )
            call = self.make_call(send, recv, layout, inplace, job.rank, job.world_size)
            rows.append(self._measure(call, layout, inplace, job))
        return PhaseResult(rows=rows)

    def _allocate(self, plan: list[tuple[Layout, bool]], device: torch.device):
        # One allocation per probe at the largest size; every row uses views of it.
        dtype = self.config.torch_dtype
        send = torch.zeros(max((lay.send_numel for lay, _ in plan), default=0), dtype=dtype, device=device)
        recv = torch.zeros(max((lay.recv_numel for lay, _ in plan), default=0), dtype=dtype, device=device)
        return send, recv

    def _measure(self, call: Call, layout: Layout, inplace: bool, job) -> Row:
        cfg = self.config
        self.fill(call.inputs, job.rank, self.input_start(layout, inplace, job.rank), job.world_size)
        for _ in range(cfg.warmup):
            call.run()
        synchronize(job.device)
        dist.barrier()  # start the timed loop together: a late rank must not inflate the others
        seconds = seconds_per_op(call.run, cfg.iters, job.device)
        wrong, sources = self._check(call, layout, inplace, job) if cfg.check else (0, None)
        return self._gather_row(layout, inplace, seconds * 1e6, wrong, sources, job)

    def input_start(self, layout: Layout, inplace: bool, rank: int) -> int:
        """Index in the rank's pattern at which `inputs` starts (non-zero for in-place slices)."""
        return 0

    # -- correctness -------------------------------------------------------------------------
    def fill(self, tensor: torch.Tensor, rank: int, start: int = 0, world_size: int = 1) -> None:
        tensor.copy_(self.pattern(rank, tensor.numel(), start, tensor.device, world_size=world_size))

    def pattern(
        self, rank: int, numel: int, start: int, device: torch.device, world_size: int = 1
    ) -> torch.Tensor:
        """Rank-specific small integers, exact in every dtype, different per element.

        Copies use 0..96 so a misplaced chunk shows; products use +-1 (1..2 for unsigned);
        min/max make each rank the only extreme somewhere; sums and averages keep every
        partial sum inside the dtype's exact integers (see `_sum_pattern`).
        """
        idx = torch.arange(start, start + numel, device=device, dtype=torch.int64)
        op = self.config.op
        if not self.reduces:
            values = (idx * 7 + rank * 13) % 97
        elif op == "prod":
            flip = (idx + rank) % 2
            values = 1 + flip if not self.config.torch_dtype.is_signed else 1 - 2 * flip
        elif op in ("min", "max"):
            values = self._extreme_pattern(idx, rank, world_size)
        else:
            values = self._sum_pattern(idx, rank, world_size)
        return values.to(self.config.torch_dtype)

    def _extreme_pattern(self, idx: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
        # Rank idx % world alone holds the extreme there (1 for min, 5 for max): with values
        # 0..4 everywhere, the min of 5+ ranks was always 0 and hid any rank's wrong value.
        # No result is 0, so an output that was never written shows too.
        alone = idx % max(world_size, 1) == rank
        if self.config.op == "min":
            return torch.where(alone, 1, 2 + (idx + 3 * rank) % SUM_VALUE_MAX)
        return torch.where(alone, SUM_VALUE_MAX + 1, (idx + 3 * rank) % (SUM_VALUE_MAX + 1))

    def _sum_pattern(self, idx: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
        # Only every stride-th rank contributes (1..4) to an element, the others send 0, so a
        # sum never passes the dtype's exact integers (tolerance 0) and each rank's turn comes
        # once every `stride` elements: a wrong input from any rank changes some output.
        stride = self._stride(world_size)
        active = (idx + rank) % stride == 0
        return torch.where(active, 1 + (idx + 3 * rank) % SUM_VALUE_MAX, 0)

    def _stride(self, world_size: int) -> int:
        """Each rank contributes to one element in `stride` (1: every rank to every element)."""
        dtype = self.config.torch_dtype
        if not dtype.is_floating_point:
            return 1  # integer sums wrap identically in the collective and in the check
        if self.config.op == "avg":
            return max(1, math.ceil(world_size / AVG_CONTRIBUTORS))
        exact_limit = 2 / torch.finfo(dtype).eps  # integers are exact up to 2**(mantissa+1)
        return max(1, math.ceil(SUM_VALUE_MAX * world_size / exact_limit))

    def reduce_patterns(self, numel: int, start: int, world_size: int, device) -> torch.Tensor:
        """The --op reduction of every rank's pattern, computed exactly in 64 bits."""
        wide = torch.float64 if self.config.torch_dtype.is_floating_point else torch.int64
        parts = (self.pattern(r, numel, start, device, world_size).to(wide) for r in range(world_size))
        op = self.config.op
        acc = next(parts).clone()
        for part in parts:
            if op in ("sum", "avg"):
                acc += part
            elif op == "prod":
                acc *= part
            elif op == "min":
                torch.minimum(acc, part, out=acc)
            else:
                torch.maximum(acc, part, out=acc)
        return acc / world_size if op == "avg" else acc

    def _check(self, call: Call, layout: Layout, inplace: bool, job):
        """Fresh inputs, one call, then compare every element of this rank's output."""
        self.fill(call.inputs, job.rank, self.input_start(layout, inplace, job.rank), job.world_size)
        synchronize(job.device)
        dist.barrier()
        call.run()
        synchronize(job.device)
        expected = self.expected(layout, job.rank, job.world_size, job.device)
        bad = self._mismatch(call.output, expected)
        return int(bad.sum()), self._wrong_sources(bad, job.rank, job.world_size)

    def _mismatch(self, output: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        dtype = self.config.torch_dtype
        if not dtype.is_floating_point:
            # Integer reductions wrap around in the collective; cast the exact result the same way.
            return output.to(torch.int64) != expected.to(dtype).to(torch.int64)
        tolerance = self.tolerance(expected)
        return (output.to(torch.float64) - expected.to(dtype).to(torch.float64)).abs() > tolerance

    def tolerance(self, expected: torch.Tensor) -> float | torch.Tensor:
        """0 where the pattern keeps every partial result exact (all but avg); for avg, the
        division's rounding relative to each expected element.

        NCCL averages floats as a pre-multiplied sum (x * (1/n), then summed), Gloo as sum
        then divide; with at most AVG_CONTRIBUTORS non-zero terms per element, each of the
        roundings (1/n, each product, each addition, the cast of the expected value) is at
        most eps/2 of the result, so (AVG_CONTRIBUTORS + 2) * eps/2 * |expected| bounds both.
        """
        if not self.reduces or self.config.op != "avg" or not self.config.torch_dtype.is_floating_point:
            return 0.0
        relative = (AVG_CONTRIBUTORS + 2) * torch.finfo(self.config.torch_dtype).eps / 2
        return relative * expected.to(torch.float64).abs()

    def _wrong_sources(self, bad: torch.Tensor, rank: int, world_size: int) -> list[int] | None:
        sources = self.output_sources(rank, world_size)
        if sources is None or not bool(bad.any()):
            return None
        chunks = bad.view(len(sources), -1).any(dim=1).tolist()
        return sorted({src for src, is_bad in zip(sources, chunks, strict=True) if is_bad})

    # -- one row, gathered ---------------------------------------------------------------------
    def _gather_row(
        self, layout: Layout, inplace: bool, time_us: float, wrong: int, sources: list[int] | None, job
    ) -> Row:
        n = job.world_size
        mine = torch.tensor([time_us, float(wrong)], dtype=torch.float64, device=job.device)
        everyone = torch.empty(2 * n, dtype=torch.float64, device=job.device)
        all_gather_single(everyone, mine)
        per_rank = everyone.view(n, 2).cpu()
        times = per_rank[:, 0].tolist()
        wrong_per_rank = [int(w) for w in per_rank[:, 1].tolist()]
        spread = across_ranks(times)
        return Row(
            probe=self.name,
            size_bytes=layout.size_bytes,
            count=layout.count,
            dtype=self.config.dtype,
            op=self.config.op if self.reduces else "none",
            root=self.config.root if self.rooted else -1,
            inplace=inplace,
            time_us=spread["mean"],
            algbw_gbps=algbw_gbps(layout.size_bytes, spread["mean"]),
            busbw_gbps=busbw_gbps(self.name, layout.size_bytes, spread["mean"], n),
            wrong=sum(wrong_per_rank) if self.config.check else None,  # None: not checked
            min_time_us=spread["min"],
            max_time_us=spread["max"],
            slowest_rank=spread["argmax"],
            wrong_ranks=[r for r, w in enumerate(wrong_per_rank) if w],
            wrong_sources=self._gather_sources(sources, wrong_per_rank, job),
            iters=self.config.iters,
            world_size=n,
        )

    def _gather_sources(self, sources: list[int] | None, wrong_per_rank: list[int], job) -> list[int]:
        """Which ranks sent the chunks that arrived wrong (only asked when something was wrong)."""
        if not any(wrong_per_rank) or self.output_sources(0, job.world_size) is None:
            return []
        n = job.world_size
        mine = torch.zeros(n, dtype=torch.float64, device=job.device)
        for src in sources or []:
            mine[src] = 1.0
        everyone = torch.empty(n * n, dtype=torch.float64, device=job.device)
        all_gather_single(everyone, mine)
        return sorted(set(torch.nonzero(everyone.view(n, n).cpu().sum(dim=0)).flatten().tolist()))


REGISTRY: dict[str, type[CollectiveProbe]] = {}  # name -> probe class, filled by @register


def register(cls: type[CollectiveProbe]) -> type[CollectiveProbe]:
    REGISTRY[cls.name] = cls
    return cls


def even_split(size_bytes: int, itemsize: int, world_size: int) -> int:
    """Elements per rank when a total size is split evenly (nccl-tests rounds down)."""
    return size_bytes // itemsize // world_size
