"""all_gather: every rank ends with all ranks' chunks, in rank order.

Size is the total output; count is the per-rank chunk (as nccl-tests prints). In place,
each rank's input is its own slice of the output.
"""

import torch

from nccldoctor.probes.collectives.harness import (
    Call,
    CollectiveProbe,
    Layout,
    all_gather_single,
    even_split,
    register,
)


@register
class AllGather(CollectiveProbe):
    name = "all_gather"

    def layout(self, size_bytes: int, itemsize: int, world_size: int) -> Layout:
        count = even_split(size_bytes, itemsize, world_size)
        total = count * world_size
        return Layout(total * itemsize, count, send_numel=count, recv_numel=total)

    def make_call(self, send, recv, layout, inplace, rank, world_size) -> Call:
        count = layout.count
        out = recv[: count * world_size]
        inp = out[rank * count : (rank + 1) * count] if inplace else send[:count]
        return Call(run=lambda: all_gather_single(out, inp), inputs=inp, output=out)

    def expected(self, layout, rank, world_size, device) -> torch.Tensor:
        return torch.cat([self.pattern(r, layout.count, 0, device) for r in range(world_size)])

    def output_sources(self, rank: int, world_size: int) -> list[int]:
        return list(range(world_size))
