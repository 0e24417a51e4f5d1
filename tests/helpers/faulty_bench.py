"""nccldoctor.bench with one injected fault, for tests only (torchrun runs this script).

usage: faulty_bench.py FAULT RANK WHERE [bench args...]

FAULT  crash            rank RANK exits at once (os._exit) inside the first step matching WHERE
       stall            rank RANK sleeps for an hour instead of entering a step matching WHERE
       raise            rank RANK raises an exception inside the first step matching WHERE
       stall-join       rank RANK sleeps for an hour after publishing its rank info, before the
                        process group forms (WHERE is ignored): the job hangs at init
       corrupt-output   after each call of probe WHERE, one element of rank RANK's output is changed
       corrupt-input    rank RANK's input to probe WHERE is changed before every call
       flags            rank RANK gets the extra bench arguments WHERE (e.g. "-e 1M")
       slow-compute     rank RANK's compute-probe matmuls do WHERE times the work (e.g. "3")
       perturb-params   rank RANK's DDP replica gets one parameter nudged after its first synced
                        step (WHERE is ignored): the replicas no longer match
       rank-zero-data   rank RANK's DDP sampler takes rank 0's shard and its RNG rank 0's seed
                        (WHERE is ignored): as if the job had told it it was rank 0

Faults come from monkeypatching and subclassing here; the product has no fault hooks.
"""

import os
import sys
import time

import torch

from nccldoctor import bench, runner
from nccldoctor.probes.collectives import REGISTRY


def inject_at_step(fault: str, rank: int, where: str) -> None:
    original = runner.Bench.step

    def step(self, label: str) -> None:
        hit = self.launch.rank == rank and where in label
        if hit and fault == "stall":  # never arrives at the step
            time.sleep(3600)
        original(self, label)
        if hit and fault == "crash":  # dies inside the step
            os._exit(17)
        if hit and fault == "raise":
            raise ZeroDivisionError("injected failure")

    runner.Bench.step = step


def stall_before_process_group(rank: int) -> None:
    original = runner.publish_rank_info

    def publish(store, info) -> None:
        original(store, info)
        if info.rank == rank:
            time.sleep(3600)

    runner.publish_rank_info = publish


def corrupt_probe(fault: str, rank: int, probe: str) -> None:
    base = REGISTRY[probe]

    class Corrupted(base):
        def make_call(self, send, recv, layout, inplace, my_rank, world_size):
            call = super().make_call(send, recv, layout, inplace, my_rank, world_size)
            if my_rank != rank:
                return call
            run = call.run
            if fault == "corrupt-output":

                def corrupted_run():
                    run()
                    call.output[-1] += 1

                call.run = corrupted_run
            else:

                def corrupted_run():
                    call.inputs[0] = call.inputs[0] + 1
                    run()

                call.run = corrupted_run
            return call

    REGISTRY[probe] = Corrupted


def slow_compute(rank: int, factor: int) -> None:
    from nccldoctor.probes.health import compute

    original = compute.Kernels.matmul

    def matmul(self, repeats: int) -> None:
        original(self, repeats * (factor if os.environ.get("RANK") == str(rank) else 1))

    compute.Kernels.matmul = matmul


def perturb_params(rank: int) -> None:
    from nccldoctor.probes import ddp

    original = ddp.DdpBenchmark.synced_step

    def synced_step(self, model, optimizer, batches):
        result = original(self, model, optimizer, batches)
        if self.job.rank == rank and not getattr(self, "perturbed", False):
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] += 1e-3
            self.perturbed = True
        return result

    ddp.DdpBenchmark.synced_step = synced_step


def rank_zero_data(rank: int) -> None:
    from nccldoctor.probes import ddp
    from nccldoctor.probes.ddp import sharding

    if os.environ.get("RANK") != str(rank):
        return
    original = sharding.make_sampler

    def make_sampler(dataset, seed, drop_last):
        sampler = original(dataset, seed, drop_last)
        sampler.rank = 0  # what __iter__ slices the order with
        return sampler

    sharding.make_sampler = make_sampler
    ddp.rank_seed = lambda _rank: ddp.SEED


def main() -> None:
    fault, rank, where, *bench_args = sys.argv[1:]
    if fault.startswith("corrupt"):
        corrupt_probe(fault, int(rank), where)
    elif fault == "flags":
        if os.environ.get("RANK") == rank:
            bench_args += where.split()
    elif fault == "slow-compute":
        slow_compute(int(rank), int(where))
    elif fault == "perturb-params":
        perturb_params(int(rank))
    elif fault == "rank-zero-data":
        rank_zero_data(int(rank))
    elif fault == "stall-join":
        stall_before_process_group(int(rank))
    else:
        inject_at_step(fault, int(rank), where)
    torch.manual_seed(0)
    bench.main(bench_args)


if __name__ == "__main__":
    main()
