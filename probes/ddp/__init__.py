"""The reference DDP training benchmark, run in the bench's own process group after the probes.

What a user's training will see, next to what the collectives measured: a fixed GPT-style model
(nccldoctor.refmodel) on synthetic tokens through a Dataset and a DistributedSampler, wrapped in
DistributedDataParallel (bucket_cap_mb from --ddp-bucket-mb), AdamW, bf16 autocast on GPU
(fp16 with loss scaling where the GPU has no bf16: V100, T4) and fp32 on CPU. After warm-up it
alternates windows of steps with gradient sync and steps inside no_sync() (forward and backward
only, no optimizer step, so the replicas stay identical; backward runs outside autocast). It reports:

- throughput from the synced steps: global samples/s and tokens/s;
- per rank: step time p50/p95 (synced) and compute time p50 (no_sync: nobody waits for
  anybody), which feeds the straggler view;
- communication: exposed cost = synced forward+backward - no_sync forward+backward, also as a
  share of the step; predicted all-reduce time = each DDP bucket's bytes / the all_reduce
  bandwidth the probes measured at that size (interpolated, or measured here at the bucket size
  when the probes did not reach it); on Gloo the all-reduce time DDP really spent, timed in a
  communication hook, which splits the gap into bandwidth achieved and overlap;
- correctness: after the last synced step every rank's parameter checksums must be equal and
  the loss must have fallen, else `ddp_divergence`;
- sharding, before the measured steps (`sharding`): the ranks' DistributedSampler shards must
  split the data and change order with set_epoch, else `sampler_overlap`, and the ranks' RNG
  streams (seeded SEED + rank) must differ, else `rng_identical`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from nccldoctor.bandwidth import BUS_FACTORS
from nccldoctor.config import CollectiveOptions, DdpOptions
from nccldoctor.findings import Finding, make_finding
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.precision import compute_dtype, dtype_name
from nccldoctor.probes.collectives import REGISTRY
from nccldoctor.probes.ddp import sharding
from nccldoctor.probes.ddp.checkpoint import judge_checkpoint, round_trip
from nccldoctor.refmodel import PRESETS, Gpt, Preset, SyntheticTokens, gradient_bytes, parameter_count
from nccldoctor.rows import Row
from nccldoctor.runtime import Job, gather_objects
from nccldoctor.timing import Clock
from nccldoctor.units import format_bytes

SEED = 1234  # data, sampler and model init; rank r seeds its own torch RNG with SEED + r
WINDOW = 5  # steps per window; windows alternate synced / no_sync
WARMUP_STEPS = 3
LOSS_WINDOW = 5  # the loss must fall from the first synced steps to the last ones
BUCKET_MEASURE_ITERS = 20
DISPLAY_STEPS = 4  # progress: model, sampler, checkpoint, and about one all_reduce at a bucket size
GROUP_RATIO = 1.2  # buckets this close in size share one all_reduce measurement


@dataclass(frozen=True)
class DdpPlan:
    preset_name: str
    preset: Preset
    batch: int  # per-rank micro-batch
    accum: int  # micro-batches per optimizer step
    bucket_mb: float
    steps: int  # measured synced steps (as many no_sync steps again)

    @property
    def tokens_per_micro_batch(self) -> int:
        return self.batch * self.preset.seq_len


def plan_ddp(config: DdpOptions, device: torch.device) -> DdpPlan:
    name = config.model
    if name == "auto":
        name = "gpt2-125m" if device.type == "cuda" else "tiny"
    preset = PRESETS[name]
    steps = max(WINDOW, math.ceil(config.steps / WINDOW) * WINDOW)
    return DdpPlan(name, preset, config.batch or preset.batch, config.accum, config.bucket_mb, steps)


class TimedAllReduce:
    """A DDP communication hook doing what the default one does (average by all-reduce) while
    noting each bucket's size and, on Gloo, when its all-reduce started and finished (the
    future completes on Gloo's thread when the data are in; on NCCL it completes before the
    GPU is done, so no times are kept there)."""

    def __init__(self, world_size: int, timed: bool) -> None:
        self.world_size = world_size
        self.timed = timed
        self.recording = False
        self.sizes: dict[int, int] = {}  # bucket index -> bytes (buckets are fixed after warm-up)
        self.intervals: list[tuple[float, float]] = []

    def all_reduce(self, bucket: dist.GradBucket) -> torch.futures.Future:
        buffer = bucket.buffer().div_(self.world_size)
        if self.recording:
            self.sizes.setdefault(bucket.index(), buffer.numel() * buffer.element_size())
        start = time.perf_counter()
        future = dist.all_reduce(buffer, async_op=True).get_future()

        def done(fut: torch.futures.Future) -> torch.Tensor:
            if self.recording and self.timed:
                self.intervals.append((start, time.perf_counter()))
            return fut.value()[0]

        return future.then(done)

    @property
    def bucket_bytes(self) -> list[int]:
        return [self.sizes[index] for index in sorted(self.sizes)]

    def busy_seconds(self) -> float:
        """The union of the recorded intervals: how long some bucket was being all-reduced."""
        total, reach = 0.0, -math.inf
        for start, end in sorted(self.intervals):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        self.intervals.clear()
        return total


@dataclass
class RankTimes:
    """One rank's measurements, in seconds."""

    step: list[float] = field(default_factory=list)  # synced: forward, backward, sync, optimizer
    synced_fb: list[float] = field(default_factory=list)  # synced forward + backward (+ sync)
    local_fb: list[float] = field(default_factory=list)  # no_sync forward + backward
    allreduce: list[float] = field(default_factory=list)  # Gloo: DDP's all-reduce busy time
    losses: list[float] = field(default_factory=list)  # every synced step, warm-up included


class DdpBenchmark:
    def __init__(self, job: Job, config: DdpOptions, step: Callable[[str], None]) -> None:
        self.job = job
        self.config = config
        self.step = step
        self.plan = plan_ddp(config, job.device)
        self.clock = Clock(job.device)
        # fp16 gradients underflow without loss scaling (bf16 has fp32's range); a no-op elsewhere.
        fp16 = compute_dtype(job.device) == torch.float16
        # A modest first scale: each overflow skips a step, and the loss must fall in a short run.
        self.scaler = torch.amp.GradScaler(job.device.type, init_scale=2.0**10, enabled=fp16)

    # -- every rank --------------------------------------------------------------------------
    def run(self, probe_rows: list[Row]) -> DdpRun:
        self.step(f"DDP benchmark: {self.plan.preset_name} model")
        torch.manual_seed(SEED)  # the same initial model everywhere (DDP broadcasts rank 0's anyway)
        model = Gpt(self.plan.preset).to(self.job.device)
        torch.manual_seed(rank_seed(self.job.rank))
        draws = sharding.rng_draws()  # the stream as training starts it, before the loader uses it
        self.step("DDP benchmark: sampler shards")
        # Before the measured steps: a gather here costs nothing they time.
        shards = gather_objects(sharding.collect_shards(SEED) | {"rng": draws})
        ddp = DistributedDataParallel(
            model,
            device_ids=[self.job.device.index] if self.job.device.type == "cuda" else None,
            bucket_cap_mb=self.plan.bucket_mb,
        )
        hook = TimedAllReduce(self.job.world_size, timed=self.job.device.type == "cpu")
        ddp.register_comm_hook(hook, timed_all_reduce_hook)
        optimizer = torch.optim.AdamW(ddp.parameters(), lr=self.plan.preset.lr)
        batches = self.batches()
        times = RankTimes()
        losses = [self.synced_step(ddp, optimizer, batches)[0] for _ in range(WARMUP_STEPS)]
        hook.recording = True
        for window in range(2 * self.plan.steps // WINDOW):
            self.step(f"DDP benchmark: window {window + 1}")
            if window % 2 == 0:
                marks = []
                for _ in range(WINDOW):
                    loss, step_marks = self.synced_step(ddp, optimizer, batches)
                    losses.append(loss)
                    marks.append(step_marks)
                    times.allreduce.append(hook.busy_seconds())
                # Read the clock once a window: a GPU must not be waited for after every step.
                times.synced_fb += [self.clock.seconds(start, backward) for start, backward, _ in marks]
                times.step += [self.clock.seconds(start, end) for start, _, end in marks]
            else:
                marks = [self.local_step(ddp, batches) for _ in range(WINDOW)]
                times.local_fb += [self.clock.seconds(start, end) for start, end in marks]
        hook.recording = False
        times.losses = torch.stack(losses).tolist()
        buckets = hook.bucket_bytes
        checksums = parameter_checksums(model)
        bucket_busbw = self.bucket_bandwidth(buckets, probe_rows)
        return DdpRun(self.plan, self.job, model, times, checksums, buckets, bucket_busbw, hook.timed, shards)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Micro-batches forever, epoch after epoch (set_epoch each time, as training must)."""
        per_epoch = 4 * self.plan.batch * self.job.world_size  # several epochs even in short runs
        data = SyntheticTokens(self.plan.preset, per_epoch, SEED)
        sampler = sharding.make_sampler(data, SEED, drop_last=True)  # the one the check checked
        loader = DataLoader(data, batch_size=self.plan.batch, sampler=sampler, drop_last=True)
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            for tokens, targets in loader:
                yield (
                    tokens.to(self.job.device, non_blocking=True),
                    targets.to(self.job.device, non_blocking=True),
                )
            epoch += 1

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.job.device.type == "cuda":  # bf16, or fp16 on GPUs without it (V100, T4)
            return torch.autocast("cuda", dtype=compute_dtype(self.job.device))
        return contextlib.nullcontext()  # fp32 on CPU

    def forward_backward(self, ddp: DistributedDataParallel, batches, sync: bool) -> torch.Tensor:
        """One optimizer step's micro-batches (DDP syncs on the last one when `sync`); the loss
        stays a tensor, as reading it would make the host wait for a GPU."""
        total = torch.zeros((), device=self.job.device)
        for micro in range(self.plan.accum):
            tokens, targets = next(batches)
            last = micro == self.plan.accum - 1
            with contextlib.nullcontext() if (sync and last) else ddp.no_sync():
                with self.autocast():  # the forward only: backward runs in the forward's dtypes
                    loss = ddp(tokens, targets) / self.plan.accum
                self.scaler.scale(loss).backward()  # inside no_sync: the sync is decided there
            total += loss.detach()
        return total

    def synced_step(self, ddp, optimizer, batches) -> tuple[torch.Tensor, tuple]:
        """One synced training step: its loss and (start, after backward, end) clock marks."""
        start = self.clock.mark()
        loss = self.forward_backward(ddp, batches, sync=True)
        after_backward = self.clock.mark()
        self.scaler.step(optimizer)  # optimizer.step() unless fp16 loss scaling is on
        self.scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss, (start, after_backward, self.clock.mark())

    def local_step(self, ddp, batches) -> tuple:
        """Forward and backward inside no_sync(): the same compute, no communication, no update."""
        start = self.clock.mark()
        self.forward_backward(ddp, batches, sync=False)
        end = self.clock.mark()
        ddp.zero_grad(set_to_none=True)
        return start, end

    def bucket_bandwidth(self, buckets: list[int], rows: list[Row]) -> dict[int, tuple[float, str]]:
        """bucket bytes -> (all_reduce busbw GB/s at that size, where the number comes from).

        From the probes' all_reduce rows when they bracket the size (interpolated in log size),
        else measured here, once per group of buckets within about 20% of each other (DDP's
        buckets are mostly the same size: one measurement each would only add noise), at the
        group's largest size. Every rank decides the same way (the same rows, the same
        buckets), so every rank joins the same measurements.
        """
        if self.job.world_size < 2:
            return {}
        measured = sorted((r.size_bytes, r.busbw_gbps) for r in rows if r.probe == "all_reduce")
        result = {}
        for group in size_groups(buckets):
            inside = measured and measured[0][0] <= min(group) and max(group) <= measured[-1][0]
            if inside:
                result |= {size: (interpolate(measured, size), "probes (interpolated)") for size in group}
            else:
                busbw = self.measure_allreduce(max(group))
                result |= {size: (busbw, f"measured at {format_bytes(max(group))}") for size in group}
        return result

    def measure_allreduce(self, size: int) -> float:
        self.step(f"DDP benchmark: all_reduce at {format_bytes(size)}")
        # What DDP does with a bucket, whatever the run's collective flags: a float32 sum, unchecked.
        config = CollectiveOptions(
            probes=["all_reduce"],
            min_bytes=size,
            max_bytes=size,
            dtype="float32",
            op="sum",
            iters=BUCKET_MEASURE_ITERS,
            warmup=5,
            check=False,
        )
        probe = REGISTRY["all_reduce"](config)
        rows = probe.run(PhaseContext(job=self.job, config=config)).rows
        return rows[0].busbw_gbps


def rank_seed(rank: int) -> int:
    """Each rank's own torch RNG: different streams, so ranks draw different random numbers."""
    return SEED + rank


# No annotations: DDP checks a hook's against real types, and this module's are strings.
def timed_all_reduce_hook(state, bucket):
    return state.all_reduce(bucket)


def size_groups(sizes: list[int]) -> list[list[int]]:
    """Distinct sizes, grouped where each is within GROUP_RATIO of the group's smallest."""
    groups: list[list[int]] = []
    for size in sorted(set(sizes)):
        if groups and size <= groups[-1][0] * GROUP_RATIO:
            groups[-1].append(size)
        else:
            groups.append([size])
    return groups


def interpolate(points: list[tuple[int, float]], size: int) -> float:
    """busbw at `size`, linear in log(size) between the measured sizes around it."""
    for (s0, b0), (s1, b1) in itertools.pairwise(points):
        if s0 <= size <= s1:
            if s1 == s0:
                return b0
            w = (math.log(size) - math.log(s0)) / (math.log(s1) - math.log(s0))
            return b0 + w * (b1 - b0)
    return points[-1][1] if size >= points[-1][0] else points[0][1]


def parameter_checksums(model: torch.nn.Module) -> list[float]:
    """Two sums over every parameter in float64 (a plain one and a position-weighted one):
    identical replicas give identical sums, bit for bit."""
    plain = torch.zeros((), dtype=torch.float64)
    weighted = torch.zeros((), dtype=torch.float64)
    for index, parameter in enumerate(model.parameters()):
        values = parameter.detach().double().cpu()
        plain += values.sum()
        weighted += (index + 1) * (values * torch.linspace(1, 2, values.numel()).view_as(values)).sum()
    return [float(plain), float(weighted)]


@dataclass
class DdpRun:
    """One rank's finished benchmark (its model is kept for the checkpoint step)."""

    plan: DdpPlan
    job: Job
    model: torch.nn.Module
    times: RankTimes
    checksums: list[float]
    bucket_bytes: list[int]
    bucket_busbw: dict[int, tuple[float, str]]
    timed_hook: bool
    sharding: list[dict[str, Any]]  # every rank's sampler shards by epoch and RNG draws

    def summary(self) -> dict[str, Any]:
        t = self.times
        return {
            "rank": self.job.rank,
            "step_p50_ms": 1e3 * percentile(t.step, 50),
            "step_p95_ms": 1e3 * percentile(t.step, 95),
            "synced_fb_p50_ms": 1e3 * percentile(t.synced_fb, 50),
            "compute_p50_ms": 1e3 * percentile(t.local_fb, 50),
            "allreduce_p50_ms": 1e3 * percentile(t.allreduce, 50) if self.timed_hook else None,
            "step_mean_s": statistics.fmean(t.step),
            "losses": t.losses,
            "checksums": self.checksums,
        }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def gather_summaries(run: DdpRun) -> list[dict[str, Any]]:
    """Every rank's summary, on every rank (a few kB each)."""
    return gather_objects(run.summary())


# -- rank 0: the report -----------------------------------------------------------------------


def report_ddp(run: DdpRun, summaries: list[dict[str, Any]]) -> tuple[list[Finding], dict[str, Any]]:
    plan, job = run.plan, run.job
    world = job.world_size
    global_batch = plan.batch * world * plan.accum
    step_s = max(s["step_mean_s"] for s in summaries)  # synced: the slowest rank sets the pace
    synced_fb = statistics.median(s["synced_fb_p50_ms"] for s in summaries)
    local_fb = statistics.median(s["compute_p50_ms"] for s in summaries)
    step_ms = statistics.median(s["step_p50_ms"] for s in summaries)
    section = {
        "model": {
            "preset": plan.preset_name,
            **dataclasses.asdict(plan.preset),
            "parameters": parameter_count(run.model),
            "precision": precision_label(job.device),
            "dtype": dtype_name(compute_dtype(job.device)),
        },
        "batch": batch_section(plan, world),
        "throughput": {
            "samples_per_s": global_batch / step_s,
            "tokens_per_s": global_batch * plan.preset.seq_len / step_s,
            "step_p50_ms": step_ms,
            "step_p95_ms": statistics.median(s["step_p95_ms"] for s in summaries),
            "measured_steps": plan.steps,
        },
        "communication": comm_section(run, summaries, synced_fb, local_fb, step_ms),
        "ranks": [
            {
                "rank": s["rank"],
                "node": job.node_of(s["rank"]),
                "step_p50_ms": s["step_p50_ms"],
                "step_p95_ms": s["step_p95_ms"],
                "compute_p50_ms": s["compute_p50_ms"],
            }
            for s in summaries
        ],
    }
    findings, section["correctness"] = judge_correctness(summaries, job)
    more, section["sampler"] = judge_sharding(run.sharding, job)
    return findings + more, section


def judge_sharding(gathered: list[dict[str, Any]], job: Job) -> tuple[list[Finding], dict[str, Any]]:
    """The sampler's shards (the index dataset of sharding.collect_shards) and the RNG draws."""
    epochs = {epoch: [g["shards"][i] for g in gathered] for i, epoch in enumerate(sharding.EPOCHS)}
    size = gathered[0]["size"]  # rank 0's dataset; every rank built the same one
    findings, section = sharding.judge_sampler(epochs, size, job, drop_last=False, shuffle=True)
    more, section["rng"] = sharding.judge_rng([g["rng"] for g in gathered], job)
    section["rng"]["seed"] = f"{SEED} + rank"
    return findings + more, section


def precision_label(device: torch.device) -> str:
    """'bf16 autocast' (fp16 on GPUs without bf16) on a GPU, 'fp32' on a CPU."""
    if device.type != "cuda":
        return "fp32"
    return "bf16 autocast" if compute_dtype(device) == torch.bfloat16 else "fp16 autocast"


def batch_section(plan: DdpPlan, world: int) -> dict[str, Any]:
    global_batch = plan.batch * world * plan.accum
    section = {
        "per_rank": plan.batch,
        "ranks": world,
        "accumulation": plan.accum,
        "global": global_batch,
        "tokens_per_step": global_batch * plan.preset.seq_len,
        "lr": plan.preset.lr,
        "lr_hint": None,
    }
    if global_batch != plan.batch:
        scaled = plan.preset.lr * global_batch / plan.batch
        section["lr_hint"] = (
            f"global batch {global_batch} = {plan.batch} per rank x {world} ranks x {plan.accum} "
            f"accumulation; lr {plan.preset.lr:g} is the preset's for a batch of {plan.batch}: the "
            f"linear scaling rule would use {scaled:.3g} (this benchmark keeps {plan.preset.lr:g})"
        )
    return section


def comm_section(
    run: DdpRun, summaries: list[dict[str, Any]], synced_fb_ms: float, no_sync_fb_ms: float, step_ms: float
) -> dict[str, Any]:
    world = run.job.world_size
    exposed_ms = max(0.0, synced_fb_ms - no_sync_fb_ms)
    grad = gradient_bytes(run.model)
    predicted_ms = None
    buckets = []
    for size in run.bucket_bytes:
        busbw, source = run.bucket_busbw.get(size, (None, "one rank: nothing to all-reduce"))
        algbw = busbw / BUS_FACTORS["all_reduce"](world) if busbw and world > 1 else None
        buckets.append(
            {
                "bytes": size,
                "busbw_gbps": busbw,
                "source": source,
                "predicted_ms": size / algbw / 1e6 if algbw else None,
            }
        )
    if buckets and all(b["predicted_ms"] is not None for b in buckets):
        predicted_ms = sum(b["predicted_ms"] for b in buckets)
    measured = [s["allreduce_p50_ms"] for s in summaries if s["allreduce_p50_ms"] is not None]
    allreduce_ms = statistics.median(measured) if measured else None
    section = {
        "gradient_bytes": grad,
        "bucket_cap_mb": run.plan.bucket_mb,
        "buckets": buckets,
        "synced_fb_ms": synced_fb_ms,
        "no_sync_fb_ms": no_sync_fb_ms,
        "exposed_ms": exposed_ms,
        "share_of_step": exposed_ms / step_ms if step_ms else None,
        "predicted_allreduce_ms": predicted_ms,
        "ddp_allreduce_ms": allreduce_ms,  # Gloo only: DDP's own all-reduce busy time
        "fraction_of_probe_bandwidth": None,
        "hidden_by_overlap": None,
    }
    if predicted_ms and allreduce_ms:
        section["fraction_of_probe_bandwidth"] = predicted_ms / allreduce_ms
        section["hidden_by_overlap"] = max(0.0, 1 - exposed_ms / allreduce_ms)
    elif predicted_ms:  # NCCL: assume DDP reached the probes' bandwidth
        section["hidden_by_overlap"] = max(0.0, 1 - exposed_ms / predicted_ms)
    return section


def judge_correctness(summaries: list[dict[str, Any]], job: Job) -> tuple[list[Finding], dict[str, Any]]:
    reference = summaries[0]["checksums"]
    different = [s["rank"] for s in summaries if s["checksums"] != reference]
    if different and len(different) * 2 > len(summaries):  # rank 0 is the odd one out
        different = [0]
    world = len(summaries)
    losses = [statistics.fmean(s["losses"][i] for s in summaries) for i in range(len(summaries[0]["losses"]))]
    first = statistics.fmean(losses[:LOSS_WINDOW])
    last = statistics.fmean(losses[-LOSS_WINDOW:])
    section = {
        "checksums_equal": not different,
        "differing_ranks": different,
        "loss_first": first,
        "loss_last": last,
        "loss_decreased": last < first,
        "losses": losses,
    }
    findings = []
    if different:
        findings.append(
            make_finding(
                "ddp_divergence",
                f"after a synchronised DDP step the parameters of rank(s) {', '.join(map(str, different))} "
                f"differ from the other {world - len(different)} rank(s) (checksums compared)",
                ranks=different,
                nodes=job.nodes_of(different),
                evidence={"checksums": {s["rank"]: s["checksums"] for s in summaries}},
            )
        )
    if not last < first:
        findings.append(
            make_finding(
                "ddp_divergence",
                f"the DDP benchmark's loss did not fall: {first:.3f} over the first {LOSS_WINDOW} steps, "
                f"{last:.3f} over the last {LOSS_WINDOW}",
                nodes=sorted({job.node_of(s["rank"]) for s in summaries}),
                evidence={"loss_first": first, "loss_last": last, "losses": losses},
            )
        )
    return findings, section


def phases(config) -> list[Phase]:
    return [DdpPhase(config.ddp)] if config.ddp.enabled else []


class DdpPhase(Phase):
    """The benchmark, then the optional checkpoint round trip (--ckpt-dir)."""

    name = "ddp"

    def __init__(self, options) -> None:
        self.options = options

    def planned_steps(self, ctx: PhaseContext) -> int:
        return DISPLAY_STEPS + 2 * self.options.steps // WINDOW

    def run(self, ctx: PhaseContext) -> PhaseResult:
        run = DdpBenchmark(ctx.job, self.options, ctx.step).run(ctx.rows())
        summaries = gather_summaries(run)
        records = None
        if self.options.ckpt_dir is not None:
            ctx.step("DDP benchmark: checkpoint round trip")
            records = round_trip(run.model, self.options.ckpt_dir, ctx.job)
        if ctx.job.rank != 0:
            return PhaseResult()
        findings, section = report_ddp(run, summaries)
        if records is not None:
            more, section["checkpoint"] = judge_checkpoint(records, self.options.ckpt_dir, ctx.job)
            findings += more
        return PhaseResult(findings=findings, sections={"ddp": section})
