"""All bandwidth arithmetic, in one place (the formulas of nccl-tests' doc/PERFORMANCE.md).

Sizes are total buffer sizes in bytes, as nccl-tests prints them: the full output of
all_gather, the full input of reduce_scatter, the whole send buffer of all_to_all.

algbw = size / time. It is what an application sees, but it shrinks as ranks are added
for some collectives even when every link runs at full speed.

busbw = algbw * factor(n). The factor turns algbw into the bandwidth each rank's link
actually carries in the best (ring-optimal) algorithm, so busbw can be compared with the
hardware's line rate whatever the number of ranks n:

  all_reduce       2(n-1)/n  each rank sends and receives (n-1)/n of the data twice
                             (reduce-scatter phase, then all-gather phase)
  all_gather       (n-1)/n   each rank receives the n-1 chunks it does not own
  reduce_scatter   (n-1)/n   each rank sends the n-1 chunks it does not keep
  all_to_all       (n-1)/n   each rank sends n-1 of its n chunks to other ranks
  broadcast        1         every byte crosses every link once (pipelined)
  sendrecv         1         a point-to-point copy

GB/s means 1e9 bytes per second, as in nccl-tests.
"""

from collections.abc import Callable

BYTES_PER_GB = 1e9
# Below this total size a collective is latency-bound: its time is nearly the same at every size
# and its busbw a tiny number that says little, so tables show its time instead (and the
# settings sweep judges it as its own band, where NCCL's LL protocol rules).
LATENCY_BOUND_BELOW = 64 * 1024


def _ring_factor(n: int) -> float:
    return (n - 1) / n


def _all_reduce_factor(n: int) -> float:
    return 2 * (n - 1) / n


def _one(n: int) -> float:
    return 1.0


# Every collective the bench knows, in its default run order (config.ALL_PROBES is this list).
BUS_FACTORS: dict[str, Callable[[int], float]] = {
    "all_reduce": _all_reduce_factor,
    "all_gather": _ring_factor,
    "reduce_scatter": _ring_factor,
    "broadcast": _one,
    "all_to_all": _ring_factor,
    "sendrecv": _one,
}


def algbw_gbps(size_bytes: int, time_us: float) -> float:
    """Algorithm bandwidth in GB/s (1e9 B/s) of moving `size_bytes` in `time_us`."""
    if time_us <= 0:
        return 0.0
    return size_bytes / (time_us * 1e-6) / BYTES_PER_GB


def busbw_gbps(collective: str, size_bytes: int, time_us: float, world_size: int) -> float:
    """Bus bandwidth in GB/s: algbw times the collective's factor for `world_size` ranks."""
    return algbw_gbps(size_bytes, time_us) * BUS_FACTORS[collective](world_size)
