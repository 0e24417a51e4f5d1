"""reduce_scatter: rank r ends with chunk r of the --op reduction of all ranks' inputs.

Size is the total input; count is the per-rank output chunk. In place, the output is the
rank's own slice of its input.
"""

import torch

from nccldoctor.probes.collectives.harness import (
    REDUCE_OPS,
    Call,
    CollectiveProbe,
    Layout,
    even_split,
    reduce_scatter_single,
    register,
)


@register
class ReduceScatter(CollectiveProbe):
    name = "reduce_scatter"
    reduces = True

    def layout(self, size_bytes: int, itemsize: int, world_size: int) -> Layout:
        count = even_split(size_bytes, itemsize, world_size)
        total = count * world_size
        return Layout(total * itemsize, count, send_numel=total, recv_numel=count)

    def make_call(self, send, recv, layout, inplace, rank, world_size) -> Call:
        count, op = layout.count, REDUCE_OPS[self.config.op]
        inp = send[: count * world_size]
        out = inp[rank * count : (rank + 1) * count] if inplace else recv[:count]
        return Call(run=lambda: reduce_scatter_single(out, inp, op=op), inputs=inp, output=out)

    def expected(self, layout, rank, world_size, device) -> torch.Tensor:
        return self.reduce_patterns(layout.count, rank * layout.count, world_size, device)
