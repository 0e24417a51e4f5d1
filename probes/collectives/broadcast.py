"""broadcast: every rank ends with the root's buffer (--root, default 0).

torch.distributed.broadcast works in place only. Non-root ranks start from their own
pattern, so a rank that did not receive the root's data shows up as wrong.
"""

import torch
import torch.distributed as dist

from nccldoctor.probes.collectives.harness import IN_PLACE, Call, CollectiveProbe, Layout, register


@register
class Broadcast(CollectiveProbe):
    name = "broadcast"
    modes = (IN_PLACE,)
    rooted = True

    def layout(self, size_bytes: int, itemsize: int, world_size: int) -> Layout:
        count = size_bytes // itemsize
        return Layout(count * itemsize, count, send_numel=count, recv_numel=0)

    def make_call(self, send, recv, layout, inplace, rank, world_size) -> Call:
        buf, root = send[: layout.count], self.config.root
        return Call(run=lambda: dist.broadcast(buf, src=root), inputs=buf, output=buf)

    def expected(self, layout, rank, world_size, device) -> torch.Tensor:
        return self.pattern(self.config.root, layout.count, 0, device)

    def output_sources(self, rank: int, world_size: int) -> list[int]:
        return [self.config.root]
