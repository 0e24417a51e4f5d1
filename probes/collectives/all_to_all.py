"""all_to_all: rank r sends chunk j of its buffer to rank j and receives chunk r of every
rank's buffer, in rank order. Size is one rank's whole buffer; count is one chunk.

torch's all_to_all_single has no in-place form, so only the out-of-place column is measured.
"""

import torch
import torch.distributed as dist

from nccldoctor.probes.collectives.harness import (
    OUT_OF_PLACE,
    Call,
    CollectiveProbe,
    Layout,
    even_split,
    register,
)


@register
class AllToAll(CollectiveProbe):
    name = "all_to_all"
    modes = (OUT_OF_PLACE,)

    def layout(self, size_bytes: int, itemsize: int, world_size: int) -> Layout:
        count = even_split(size_bytes, itemsize, world_size)
        total = count * world_size
        return Layout(total * itemsize, count, send_numel=total, recv_numel=total)

    def make_call(self, send, recv, layout, inplace, rank, world_size) -> Call:
        total = layout.count * world_size
        inp, out = send[:total], recv[:total]
        return Call(run=lambda: dist.all_to_all_single(out, inp), inputs=inp, output=out)

    def expected(self, layout, rank, world_size, device) -> torch.Tensor:
        count = layout.count
        return torch.cat([self.pattern(src, count, rank * count, device) for src in range(world_size)])

    def output_sources(self, rank: int, world_size: int) -> list[int]:
        return list(range(world_size))
