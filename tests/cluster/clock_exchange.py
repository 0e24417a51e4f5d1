"""The clock exchange on an emulated node, started by torchrun (tests/cluster/test_clock_cluster.py).

It joins torchrun's rendezvous store as the bench does before the process group forms
(runtime.connect_store: the agent's TCPStore on MASTER_PORT, under the run's prefix) and runs
exchange_clocks. Rank 0 prints `CLOCKS {json}` (every node's offset and the judge's findings);
another node's leader prints `CLOCK {json}` (its own offset).

A node's clock is shifted with libfaketime, loaded into this process only: the test hands the
library over in WORKER_LD_PRELOAD and the script re-executes itself with it. Preloading it into
torchrun too would crash the agent: libfaketime 0.9.10 (Debian 12's) turns Python 3.11's
time.sleep into EINVAL when the monotonic clock is left true (clock_nanosleep with
TIMER_ABSTIME, libfaketime issue 426), and the agent sleeps in its monitor loop; faking the
monotonic clock instead hangs thread waits. This script never calls time.sleep.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict

import torch.distributed as dist

from nccldoctor.consistency.clocks import exchange_clocks, judge_clocks
from nccldoctor.runtime import connect_store, hostname, read_launch_env, run_prefix, wait_for

DEADLINE_S = 60.0


def preload_here_only() -> None:
    """Re-execute this worker with WORKER_LD_PRELOAD as LD_PRELOAD (the same pid: torchrun
    still watches it)."""
    preload = os.environ.pop("WORKER_LD_PRELOAD", None)
    if preload:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "LD_PRELOAD": preload})


def main() -> None:
    launch = read_launch_env()
    end = time.monotonic() + DEADLINE_S  # monotonic: libfaketime shifts only the wall clock here

    def remaining_s() -> float:
        return end - time.monotonic()

    store = dist.PrefixStore(run_prefix(launch), connect_store(launch, DEADLINE_S))
    if launch.local_rank == 0:  # the bench has these from RankInfo; here each leader says it
        store.set(f"test/host/{launch.node_rank}", hostname())
    offsets = exchange_clocks(store, launch, remaining_s)
    report = {n: asdict(o) for n, o in offsets.items()}
    if launch.rank != 0:
        print("CLOCK " + json.dumps(report), flush=True)
        return
    keys = [f"test/host/{n}" for n in range(launch.nnodes)]
    wait_for(store, keys, remaining_s())
    hosts = {n: raw.decode() for n, raw in enumerate(store.multi_get(keys))}
    findings = [f.to_dict() for f in judge_clocks(offsets, hosts)]
    print("CLOCKS " + json.dumps({"offsets": report, "hosts": hosts, "findings": findings}), flush=True)


if __name__ == "__main__":
    preload_here_only()
    main()
