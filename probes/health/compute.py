"""Per-rank compute and a synchronised training-like step: is one rank slower than its peers?

Compute probe: every rank runs the same fixed work on its own, a matmul (TFLOP/s) and a
memory copy (GB/s), plus host->device and device->host copies on a GPU. The ranks measure
in lock-step windows (a barrier before each), so a node-wide event (a noisy neighbour, a
clock change) hits every rank's same window, and each rank keeps the median of its windows.
The amount of work is fixed for all ranks from the median rank's speed, so a window takes
about WINDOW_S on a typical rank and proportionally longer on a slow one.

Step probe: a loop shaped like a training step (the same matmul, then a small all_reduce).
Per rank it splits the step into compute and time inside the collective: the collective
cannot finish before the last rank arrives, so the rank everyone waits for waits least.

On the CPU the kernels run on one thread: every rank then does the same work whatever its
node's core count, and a rank that does not get a core of its own (a CPU quota, a busy
node) shows as slow. GPU kernels are timed with CUDA events on the stream.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nccldoctor.precision import compute_dtype, dtype_name
from nccldoctor.probes.collectives.harness import all_gather_single
from nccldoctor.timing import seconds_per_op, synchronize

WINDOWS = 5  # lock-step windows; each rank keeps its median window
# Seconds of matmul per window on the median rank (the copy gets half as much). On a CPU the
# window must span many scheduler time slices (a few ms each), or which rank happened to hold a
# core decides the result on an oversubscribed node.
WINDOW_S = {"cpu": 0.1, "cuda": 0.01}
MATMUL_N = {"cpu": 128, "cuda": 8192}  # square matrices: 2 n^3 flops per product
COPY_BYTES = {"cpu": 16 << 20, "cuda": 1 << 30}  # copied per memory-bandwidth measurement
HOST_DEVICE_BYTES = 256 << 20  # per host<->device copy (GPU only, from pinned memory)
STEPS, STEP_WARMUP = 10, 1
# One step's compute is a whole window (0.1 s on a CPU): at least the usual CFS quota period
# (100 ms), so a rank under a CPU quota is throttled inside even its fastest step.
STEP_COMPUTE_SHARE = 1.0
STEP_ALLREDUCE_BYTES = 64 << 10  # a small gradient bucket
MAX_REPEATS = 100_000


@dataclass(frozen=True)
class RankCompute:
    """One rank's medians over the lock-step windows; None where not measured (no GPU)."""

    matmul_s: float  # the fixed matmul work
    copy_s: float  # one device-memory copy of COPY_BYTES
    h2d_s: float | None
    d2h_s: float | None
    step_compute_s: float  # per step, mean over the steps
    step_wait_s: float  # per step, inside the all_reduce
    # The fastest step's compute. Scored instead of the mean: while the others wait in the
    # all_reduce a rank has a core to itself, so its best step shows its speed, whereas the
    # mean also shows which rank lost scheduler races on an oversubscribed node.
    step_best_s: float
    # Not measured but where the copies ran (nccldoctor.numa), the same in every look: the GPU's
    # NUMA node, and whether the rank's CPUs are all on it. Copies are compared only where True.
    gpu_numa_node: int | None = None
    copy_numa_bound: bool | None = None


PLACEMENT_FIELDS = ("gpu_numa_node", "copy_numa_bound")


@dataclass(frozen=True)
class ComputePlan:
    """The same work on every rank (fixed from the median rank's calibration)."""

    matmul_n: int
    matmul_repeats: int
    copy_bytes: int
    copy_repeats: int
    host_device_bytes: int | None
    matmul_dtype: str = "float32"  # TFLOP/s depend on it: the report says which

    def tflops(self, seconds: float) -> float:
        return 2 * self.matmul_n**3 * self.matmul_repeats / seconds / 1e12

    def copy_gbps(self, seconds: float) -> float:
        """Bytes read plus bytes written per second (STREAM's convention for Copy)."""
        return 2 * self.copy_bytes * self.copy_repeats / seconds / 1e9

    def host_device_gbps(self, seconds: float | None) -> float | None:
        if seconds is None or not self.host_device_bytes:
            return None
        return self.host_device_bytes / seconds / 1e9


@contextlib.contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """CPU kernels on one thread for the duration (restored afterwards)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gather_floats(values: list[float], device: torch.device) -> list[list[float]]:
    """Every rank's `values` (same length everywhere), indexed by rank."""
    world = dist.get_world_size()
    mine = torch.tensor(values, dtype=torch.float64, device=device)
    everyone = torch.empty(world * len(values), dtype=torch.float64, device=device)
    all_gather_single(everyone, mine)
    return everyone.view(world, len(values)).cpu().tolist()


class Kernels:
    """The fixed work: buffers allocated once, each kernel a closure over them."""

    def __init__(self, device: torch.device) -> None:
        kind = device.type
        n = MATMUL_N[kind]
        dtype = compute_dtype(device)  # bf16 on a GPU, fp16 where it has no bf16 (V100, T4)
        self.device = device
        self.a = torch.randn(n, n, device=device).to(dtype)
        self.b = torch.randn(n, n, device=device).to(dtype)
        self.c = torch.empty(n, n, device=device, dtype=dtype)
        self.src = torch.ones(COPY_BYTES[kind] // 4, device=device)
        self.dst = torch.empty_like(self.src)
        self.host: torch.Tensor | None = None
        self.staged: torch.Tensor | None = None
        if kind == "cuda":
            self.host = torch.ones(HOST_DEVICE_BYTES // 4, pin_memory=True)
            self.staged = torch.empty(HOST_DEVICE_BYTES // 4, device=device)
        self.bucket = torch.ones(STEP_ALLREDUCE_BYTES // 4, device=device)

    def timer(self, work: Callable[[], object]) -> float:
        """Seconds for one run of `work`: CUDA events on a GPU, the host clock on the CPU."""
        return seconds_per_op(work, 1, self.device)

    def matmul(self, repeats: int) -> None:
        for _ in range(repeats):
            torch.mm(self.a, self.b, out=self.c)

    def copy(self, repeats: int = 1) -> None:
        for _ in range(repeats):
            self.dst.copy_(self.src)

    def h2d(self) -> None:
        self.staged.copy_(self.host, non_blocking=True)

    def d2h(self) -> None:
        self.host.copy_(self.staged, non_blocking=True)


def calibrate(kernels: Kernels) -> ComputePlan:
    """How many matmuls and copies fill one window on the median rank (the same on every rank)."""
    kernels.matmul(2)  # warm-up: allocation, kernel selection
    kernels.copy()
    synchronize(kernels.device)
    mine = [kernels.timer(lambda: kernels.matmul(3)) / 3, kernels.timer(kernels.copy)]
    everyone = gather_floats(mine, kernels.device)
    window = WINDOW_S[kernels.device.type]
    matmul, copy = (statistics.median(row[i] for row in everyone) for i in (0, 1))
    on_gpu = kernels.device.type == "cuda"
    return ComputePlan(
        matmul_n=kernels.a.shape[0],
        matmul_repeats=_repeats(window, matmul),
        copy_bytes=kernels.src.numel() * kernels.src.element_size(),
        copy_repeats=_repeats(window / 2, copy),
        host_device_bytes=HOST_DEVICE_BYTES if on_gpu else None,
        matmul_dtype=dtype_name(kernels.a.dtype),
    )


def _repeats(window_s: float, one_s: float) -> int:
    return min(MAX_REPEATS, max(1, math.ceil(window_s / max(one_s, 1e-9))))


def measure_windows(kernels: Kernels, plan: ComputePlan) -> list[float | None]:
    """This rank's median matmul, copy, h2d and d2h seconds over WINDOWS lock-step windows."""
    timer, on_gpu = kernels.timer, kernels.host is not None
    kernels.copy()
    if on_gpu:
        kernels.h2d()
        kernels.d2h()
    synchronize(kernels.device)
    samples: list[list[float]] = [[], [], [], []]
    for _ in range(WINDOWS):
        dist.barrier()
        samples[0].append(timer(lambda: kernels.matmul(plan.matmul_repeats)))
        samples[1].append(timer(lambda: kernels.copy(plan.copy_repeats)))
        if on_gpu:
            samples[2].append(timer(kernels.h2d))
            samples[3].append(timer(kernels.d2h))
    return [statistics.median(s) if s else None for s in samples]


def measure_steps(kernels: Kernels, plan: ComputePlan) -> tuple[float, float, float]:
    """Mean compute, mean all_reduce and fastest compute seconds per step of a
    compute-then-all_reduce loop."""
    repeats = max(1, round(plan.matmul_repeats * STEP_COMPUTE_SHARE))
    timer = kernels.timer
    compute, wait = [], []
    dist.barrier()
    for step in range(STEP_WARMUP + STEPS):
        spent = timer(lambda: kernels.matmul(repeats))
        waited = timer(lambda: dist.all_reduce(kernels.bucket))
        if step >= STEP_WARMUP:
            compute.append(spent)
            wait.append(waited)
    return statistics.fmean(compute), statistics.fmean(wait), min(compute)


def measure_compute(
    device: torch.device, plan: ComputePlan | None = None
) -> tuple[ComputePlan, list[RankCompute]]:
    """Collective: every rank measures; every rank returns the plan and all ranks' results.
    `plan`: the work of an earlier measurement, so that the two can be compared."""
    with one_cpu_thread(device):
        kernels = Kernels(device)
        plan = plan or calibrate(kernels)
        windows = measure_windows(kernels, plan)
        steps = measure_steps(kernels, plan)
    nan = float("nan")
    mine = [v if v is not None else nan for v in windows] + list(steps)
    return plan, [_rank_compute(row) for row in gather_floats(mine, device)]


def _rank_compute(row: list[float]) -> RankCompute:
    matmul, copy, h2d, d2h, step_compute, step_wait, step_best = row
    return RankCompute(
        matmul_s=matmul,
        copy_s=copy,
        h2d_s=None if math.isnan(h2d) else h2d,
        d2h_s=None if math.isnan(d2h) else d2h,
        step_compute_s=step_compute,
        step_wait_s=step_wait,
        step_best_s=step_best,
    )
