"""Does the harness inflate what it reports? The bench's all_reduce timing vs a bare loop.

    python benchmarks/overhead.py [--nproc 4] [--sizes 8,1K,64K,1M,4M] [--iters 20] [--blocks 100]

Launches itself under torchrun (--standalone, Gloo) and joins the job the way the bench does,
with the supervisor thread beating throughout. For each size it alternates, block by block,
the bench's timed region (the all_reduce probe's own Call, timed by nccldoctor.timing exactly
as a report row is) and a bare loop (`for _ in range(iters): dist.all_reduce(t)` between
perf_counter calls), each block preceded by a barrier, taking turns at going first. Each
block yields the mean over ranks of the time per op. Printed per size: the median over blocks
of each, and their ratio (bench / bare). Targets: within 3% at >= 1 MB, within 10% at 8 B.

The number the bench reports is the time of that timed region only: warm-up, the correctness
check and the gather of per-rank times run outside it, so they cannot inflate it (they do
cost wall time, which the last column shows per row).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

TARGETS = [(1 << 20, 1.03), (0, 1.10)]  # (from this size up, the largest acceptable ratio)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=4)
    p.add_argument("--sizes", default="8,1K,64K,1M,4M")
    p.add_argument("--iters", type=int, default=20, help="ops per block (the bench's -n)")
    p.add_argument("--blocks", type=int, default=100, help="blocks of each kind per size")
    return p.parse_args()


def launch() -> int:
    args = parse()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={args.nproc}",
        __file__,
        *sys.argv[1:],
    ]
    return subprocess.call(cmd)


def mean_over_ranks(value: float) -> float:
    import torch
    import torch.distributed as dist

    mine = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(mine)
    return float(mine) / dist.get_world_size()


def bare_block_us(tensor, iters: int) -> float:
    import torch.distributed as dist

    dist.barrier()
    start = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(tensor)
    return mean_over_ranks((time.perf_counter() - start) / iters * 1e6)


def bench_block_us(call, iters: int, device) -> float:
    import torch.distributed as dist

    from nccldoctor.timing import seconds_per_op

    dist.barrier()
    return mean_over_ranks(seconds_per_op(call.run, iters, device) * 1e6)


def probe_row_seconds(size: int, args, job, sup) -> float:
    """Wall time of one whole report row (warm-up, timed loop, check, gather)."""
    from nccldoctor.config import CollectiveOptions
    from nccldoctor.phase import PhaseContext
    from nccldoctor.probes.collectives import REGISTRY

    config = CollectiveOptions(probes=["all_reduce"], min_bytes=size, max_bytes=size, iters=args.iters)
    start = time.perf_counter()
    REGISTRY["all_reduce"](config).run(PhaseContext(job, config, step=sup.enter))
    return time.perf_counter() - start


def measure_size(size: int, args, job, sup) -> dict:
    import torch

    from nccldoctor.config import CollectiveOptions
    from nccldoctor.probes.collectives import REGISTRY

    config = CollectiveOptions(probes=["all_reduce"], min_bytes=size, max_bytes=size, iters=args.iters)
    probe = REGISTRY["all_reduce"](config)
    ((layout, mode),) = probe._plan(job.world_size)
    call = probe.make_call(
        torch.zeros(layout.send_numel), torch.zeros(0), layout, mode, job.rank, job.world_size
    )
    probe.fill(call.inputs, job.rank, world_size=job.world_size)
    bare_tensor = torch.zeros(layout.count)
    for _ in range(5):  # the same warm-up for both
        call.run()
        torch.distributed.all_reduce(bare_tensor)
    ours, bare = [], []
    for block in range(args.blocks):
        if block % 2 == 0:
            ours.append(bench_block_us(call, args.iters, job.device))
            bare.append(bare_block_us(bare_tensor, args.iters))
        else:
            bare.append(bare_block_us(bare_tensor, args.iters))
            ours.append(bench_block_us(call, args.iters, job.device))
    bare_row_s = args.iters * statistics.median(bare) / 1e6
    return {
        "ours": statistics.median(ours),
        "bare": statistics.median(bare),
        "row_s": probe_row_seconds(size, args, job, sup),
        "bare_row_s": bare_row_s,
    }


def worker() -> None:
    import torch.distributed as dist

    from nccldoctor.runtime import Job, choose_backend, connect_store, init_process_group, read_launch_env
    from nccldoctor.supervisor import Supervisor
    from nccldoctor.units import format_size, parse_size

    args = parse()
    launch_env = read_launch_env()
    store = dist.PrefixStore("overhead/", connect_store(launch_env, 600))
    backend, device = choose_backend("gloo", launch_env.local_rank)
    init_process_group(store, launch_env, backend, device, 600)
    job = Job(launch=launch_env, backend=backend, device=device)
    watch = dist.PrefixStore("overhead/", connect_store(launch_env, 600, serve=False))
    with Supervisor(rank=job.rank, world_size=job.world_size, store=watch, deadline_s=3600) as sup:
        results = {parse_size(s): measure_size(parse_size(s), args, job, sup) for s in args.sizes.split(",")}
    if job.rank == 0:
        print_table(results, args, format_size)
    dist.destroy_process_group()


def print_table(results: dict, args, format_size) -> None:
    print(
        f"bench all_reduce timing vs bare loop: {args.nproc} Gloo ranks, {args.iters} ops per block, "
        f"{args.blocks} interleaved blocks of each; medians over blocks"
    )
    print(
        f"{'size':>6} {'bench us':>10} {'bare us':>10} {'ratio':>7} {'target':>7} {'verdict':>8}"
        f" {'row wall s':>11} {'bare loop s':>12}"
    )
    for size, r in results.items():
        ratio = r["ours"] / r["bare"]
        limit = next(lim for floor, lim in TARGETS if size >= floor)
        verdict = "ok" if ratio <= limit else "MISS"
        print(
            f"{format_size(size):>6} {r['ours']:>10.1f} {r['bare']:>10.1f} {ratio:>7.3f} {limit:>7.2f} "
            f"{verdict:>8} {r['row_s']:>11.3f} {r['bare_row_s']:>12.3f}"
        )


if __name__ == "__main__":
    if "RANK" not in os.environ:
        sys.exit(launch())
    worker()
