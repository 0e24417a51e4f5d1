"""all_reduce: every rank ends with the --op reduction of all ranks' buffers.

torch.distributed.all_reduce works in place only, so only the in-place column is measured.
"""

import torch
import torch.distributed as dist

from nccldoctor.probes.collectives.harness import (
    IN_PLACE,
    REDUCE_OPS,
    Call,
    CollectiveProbe,
    Layout,
    register,
)


@register
class AllReduce(CollectiveProbe):
    name = "all_reduce"
    modes = (IN_PLACE,)
    reduces = True

    def layout(self, size_bytes: int, itemsize: int, world_size: int) -> Layout:
        count = size_bytes // itemsize
        return Layout(count * itemsize, count, send_numel=count, recv_numel=0)

    def make_call(self, send, recv, layout, inplace, rank, world_size) -> Call:
        buf, op = send[: layout.count], REDUCE_OPS[self.config.op]
        return Call(run=lambda: dist.all_reduce(buf, op=op), inputs=buf, output=buf)

    def expected(self, layout, rank, world_size, device) -> torch.Tensor:
        return self.reduce_patterns(layout.count, 0, world_size, device)
