"""sendrecv: a ring of point-to-point copies. Every rank sends its buffer to rank+1 and
receives rank-1's, at the same time (batched isend/irecv), so every link in the ring
carries traffic in both directions at once. Needs two ranks.
"""

import torch
import torch.distributed as dist

from nccldoctor.probes.collectives.harness import OUT_OF_PLACE, Call, CollectiveProbe, Layout, register


@register
class SendRecv(CollectiveProbe):
    name = "sendrecv"
    modes = (OUT_OF_PLACE,)
    min_world_size = 2

    def layout(self, size_bytes: int, itemsize: int, world_size: int) -> Layout:
        count = size_bytes // itemsize
        return Layout(count * itemsize, count, send_numel=count, recv_numel=count)

    def make_call(self, send, recv, layout, inplace, rank, world_size) -> Call:
        out, inp = send[: layout.count], recv[: layout.count]
        ops = [
            dist.P2POp(dist.isend, out, (rank + 1) % world_size),
            dist.P2POp(dist.irecv, inp, (rank - 1) % world_size),
        ]

        def exchange() -> None:
            for work in dist.batch_isend_irecv(ops):
                work.wait()

        return Call(run=exchange, inputs=out, output=inp)

    def expected(self, layout, rank, world_size, device) -> torch.Tensor:
        return self.pattern((rank - 1) % world_size, layout.count, 0, device)

    def output_sources(self, rank: int, world_size: int) -> list[int]:
        return [(rank - 1) % world_size]
