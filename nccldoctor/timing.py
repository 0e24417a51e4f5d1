"""Timing discipline: GPU work is timed with CUDA events on the stream, never host clocks;
CPU (Gloo) collectives are synchronous, so a monotonic host clock around the loop is exact."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def seconds_per_op(op: Callable[[], object], iters: int, device: torch.device) -> float:
    """Run `op` `iters` times back to back and return the mean time of one, in seconds.

    The loop is kept as bare as a hand-written one (no per-iteration bookkeeping), so the
    tool measures the collective and not itself.
    """
    if device.type == "cuda":
        return _cuda_seconds_per_op(op, iters)
    start = time.perf_counter()
    for _ in range(iters):
        op()
    return (time.perf_counter() - start) / iters


def _cuda_seconds_per_op(op: Callable[[], object], iters: int) -> float:
    begin = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    begin.record()
    for _ in range(iters):
        op()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1e3 / iters


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Points in time on the device's own clock: CUDA events on a GPU (read once the GPU got
    there), perf_counter on the CPU, where the work is done when the call returns."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def mark(self) -> torch.cuda.Event | float:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def seconds(self, start: torch.cuda.Event | float, end: torch.cuda.Event | float) -> float:
        if not self.cuda:
            return end - start
        end.synchronize()
        return start.elapsed_time(end) / 1e3
