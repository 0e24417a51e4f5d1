"""Does the DDP benchmark slow training down? Its tokens/s vs a bare DDP loop, same model and batch.

    python benchmarks/ddp_overhead.py [--nproc 2] [--blocks 12] [--steps 30] [--model auto]

Launches itself under torchrun (--standalone; Gloo on CPU, NCCL on GPUs) and, in one process
group, alternates blocks, taking turns at going first:

- bench: nccldoctor's DdpBenchmark (probes/ddp/: the timed communication hook, clock marks
  per step, synced and no_sync windows), its tokens/s as the report computes it (global batch
  x sequence / the slowest rank's mean synced step);
- bare: the loop of any tutorial: plain DistributedDataParallel (default communication hook,
  the same bucket_cap_mb), AdamW, the same model, data, sampler and batch; --steps synced steps
  after 3 warm-up steps between perf_counter calls (and a device synchronize), the slowest
  rank's time.

Each block builds a fresh model. Printed: tokens/s per block of each, the medians, and the
ratio bench / bare. Target: >= 0.97 (the harness must not slow training down).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time

TARGET = 0.97


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--blocks", type=int, default=12, help="blocks of each kind")
    p.add_argument("--steps", type=int, default=30, help="measured synced steps per block")
    p.add_argument("--model", default="auto", help="DDP preset: auto, tiny, gpt2-125m")
    return p.parse_args()


def launch() -> int:
    args = parse()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}"]
    # Not sys.argv: torchrun's parser takes "--nproc" (a prefix of its own --nproc-per-node) even
    # after the script's name; the workers do not need it anyway.
    forwarded = ["--blocks", str(args.blocks), "--steps", str(args.steps), "--model", args.model]
    return subprocess.call([*cmd, __file__, *forwarded])


def slowest(value: float) -> float:
    import torch
    import torch.distributed as dist

    mine = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(mine, op=dist.ReduceOp.MAX)
    return float(mine)


def bench_block(job, config) -> float:
    from nccldoctor.probes.ddp import DdpBenchmark, gather_summaries, report_ddp

    run = DdpBenchmark(job, config, step=lambda _label: None).run([])
    _, section = report_ddp(run, gather_summaries(run))
    return section["throughput"]["tokens_per_s"]


def bare_block(job, config) -> float:
    """The tutorial loop, sharing only the model, the data and the batch with the bench."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, DistributedSampler

    from nccldoctor.precision import compute_dtype
    from nccldoctor.probes.ddp import SEED, plan_ddp
    from nccldoctor.refmodel import Gpt, SyntheticTokens

    plan = plan_ddp(config, job.device)
    torch.manual_seed(SEED)
    model = Gpt(plan.preset).to(job.device)
    device_ids = [job.device.index] if job.device.type == "cuda" else None
    ddp = DDP(model, device_ids=device_ids, bucket_cap_mb=plan.bucket_mb)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=plan.preset.lr)
    data = SyntheticTokens(plan.preset, 4 * plan.batch * job.world_size, SEED)
    sampler = DistributedSampler(data, shuffle=True, seed=SEED, drop_last=True)
    loader = DataLoader(data, batch_size=plan.batch, sampler=sampler, drop_last=True)

    def batches():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    stream = batches()
    dtype = compute_dtype(job.device)  # the bench's: bf16, fp16 on GPUs without bf16
    autocast = torch.autocast("cuda", dtype=dtype, enabled=job.device.type == "cuda")
    scaler = torch.amp.GradScaler(job.device.type, init_scale=2.0**10, enabled=dtype == torch.float16)

    def train_step() -> None:
        tokens, targets = next(stream)
        with autocast:
            loss = ddp(tokens.to(job.device), targets.to(job.device))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        train_step()
    dist.barrier()
    start = time.perf_counter()
    for _ in range(config.steps):
        train_step()
    if job.device.type == "cuda":
        torch.cuda.synchronize(job.device)
    seconds = slowest(time.perf_counter() - start)
    tokens = plan.batch * job.world_size * plan.preset.seq_len * config.steps
    return tokens / seconds


def worker() -> int:
    import torch.distributed as dist

    from nccldoctor.config import DdpOptions
    from nccldoctor.runtime import Job, choose_backend, read_launch_env

    args = parse()
    launch_env = read_launch_env()
    backend, device = choose_backend("auto", launch_env.local_rank)
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    job = Job(launch=launch_env, backend=backend, device=device)
    config = DdpOptions(steps=args.steps, model=args.model)
    samples: dict[str, list[float]] = {"bench": [], "bare": []}
    kinds = {"bench": bench_block, "bare": bare_block}
    for block in range(args.blocks):
        order = ("bench", "bare") if block % 2 == 0 else ("bare", "bench")
        for kind in order:
            samples[kind].append(kinds[kind](job, config))
    if job.rank == 0:
        report(args, job.world_size, backend, samples)
    gc.collect()  # the blocks' DDP reducers go before their process group does
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # as the bench does: no interpreter teardown racing the backend's threads


def report(args: argparse.Namespace, world: int, backend: str, samples: dict[str, list[float]]) -> None:
    print(f"{world} ranks ({backend}), model {args.model}, {args.steps} synced steps per block")
    for kind, values in samples.items():
        print(f"{kind:>6} tokens/s per block: " + " ".join(f"{v:.0f}" for v in values))
    bench, bare = statistics.median(samples["bench"]), statistics.median(samples["bare"])
    paired = sorted(a / b for a, b in zip(samples["bench"], samples["bare"], strict=True))
    print(
        f"block-pair ratios bench / bare: min {paired[0]:.3f}, "
        f"median {statistics.median(paired):.3f}, max {paired[-1]:.3f}"
    )
    verdict = "ok" if bench / bare >= TARGET else "MISS"
    print(f"median tokens/s: bench {bench:.0f}, bare {bare:.0f}; bench / bare {bench / bare:.3f}")
    print(f"target >= {TARGET}: {verdict}")


if __name__ == "__main__":
    sys.exit(worker() if "LOCAL_RANK" in os.environ else launch())
