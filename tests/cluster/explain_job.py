"""A tiny Gloo job for make_explain_logs.py: join, then all-reduce in a loop, with short timeouts.

Rank 0 prints `step N` every 10 steps, so the generator knows when the loop is running. The
job itself does nothing wrong: the generator breaks it from outside (a signal, a firewall, an
environment variable), as a real failure would.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist

TIMEOUT_S = float(os.environ.get("EXPLAIN_JOB_TIMEOUT_S", "20"))
STEPS = int(os.environ.get("EXPLAIN_JOB_STEPS", "600"))
PAUSE_S = 0.1


def main() -> None:
    dist.init_process_group("gloo", timeout=timedelta(seconds=TIMEOUT_S))
    rank = dist.get_rank()
    tensor = torch.ones(1024)
    for step in range(STEPS):
        dist.all_reduce(tensor)
        tensor.fill_(1.0)
        if rank == 0 and step % 10 == 0:
            print(f"step {step}", flush=True)
        time.sleep(PAUSE_S)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
