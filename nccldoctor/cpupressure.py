"""Was this host oversubscribed while the ranks were measured? (health phase, per node leader)

A rank that shares its core with other runnable tasks is slow for reasons that are not its own:
on a VM whose hypervisor is busy, on a node running more threads than it has cores, or on the
emulated test cluster, whose nodes share one machine's cores. The straggler judgement needs to
know, for the same seconds the compute and step probes ran, how crowded the CPUs were:

- runnable tasks: `procs_running` of /proc/stat (every runnable thread on the kernel's run
  queues, including the running ones), polled every POLL_S; its mean over the window divided by
  the node's cores is how many tasks each core had to share, so a fair scheduler gave each
  about 1/that of a core;
- steal: the share of CPU time the hypervisor gave to other guests (psutil's `steal`);
- CPU pressure: PSI /proc/pressure/cpu, the share of the window in which some (at least one)
  runnable task waited for a CPU, and "full" (all non-idle tasks waited), from the `total=`
  microsecond counters read at both ends;
- CPU quota: this process's cgroup `cpu.stat` throttling (v2 `throttled_usec`, v1
  `throttled_time` in ns). A quota is the node's own limit, not a neighbour: a rank slowed by
  it is a real straggler and is named as one.

`share_factor` combines runnable tasks per core and steal into one number: 2.0 means each task
got about half a core. The straggler judgement excuses a slow rank on such a node only when its
slowness is within what that factor explains (stragglers.contention_excuses).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

PROC_STAT = Path("/proc/stat")
PSI_CPU = Path("/proc/pressure/cpu")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
POLL_S = 0.02
OVERSUBSCRIBED = 1.2  # tasks per core (steal included) from which a node counts as oversubscribed
_PSI_TOTAL = re.compile(r"^(some|full)\b.*\btotal=(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class CpuPressure:
    """One node's CPU crowding over a measurement window; travels through the store as JSON."""

    window_s: float
    cpu_count: int
    runnable_mean: float  # runnable threads on the node, mean over the polls (the poller left out)
    runnable_max: int
    steal_pct: float | None  # None: the kernel does not report steal
    psi_some_pct: float | None  # None: no PSI on this kernel
    psi_full_pct: float | None
    throttled_pct: float | None  # share of the window this process's cgroup was throttled; None: unknown

    @property
    def share_factor(self) -> float:
        """How many tasks each core served (>= 1): runnable per core, inflated by steal."""
        per_core = max(1.0, self.runnable_mean / max(self.cpu_count, 1))
        steal = min(self.steal_pct or 0.0, 90.0) / 100
        return per_core / (1 - steal)

    @property
    def oversubscribed(self) -> bool:
        return self.share_factor >= OVERSUBSCRIBED

    @property
    def throttled(self) -> bool:
        """The cgroup's CPU quota held the node's processes back for a tenth of the window or more."""
        return (self.throttled_pct or 0.0) >= 10.0

    def describe(self) -> str:
        parts = [f"{self.runnable_mean:.1f} runnable tasks on {self.cpu_count} cores on average"]
        if self.steal_pct:
            parts.append(f"{self.steal_pct:.0f}% of CPU time stolen by the hypervisor")
        if self.psi_some_pct is not None:
            parts.append(f"some task waited for a CPU {self.psi_some_pct:.0f}% of the time (PSI)")
        return ", ".join(parts) + f": each task got about 1/{self.share_factor:.1f} of a core"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "share_factor": round(self.share_factor, 3)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CpuPressure:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def procs_running(path: Path = PROC_STAT) -> int | None:
    """The kernel's count of runnable threads (running ones included); None when unreadable."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("procs_running "):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def psi_totals(path: Path = PSI_CPU) -> dict[str, int] | None:
    """{"some": us, "full": us} stalled since boot; None without PSI (file missing, psi=0)."""
    try:
        text = path.read_text()
    except OSError:
        return None
    found = {kind: int(total) for kind, total in _PSI_TOTAL.findall(text)}
    return found or None


def throttled_us(cgroup_file: Path = PROC_SELF_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """Microseconds this process's cgroup has been throttled by its CPU quota; None when unknown."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")
        if controllers == "":  # v2: one unified hierarchy
            value = _stat_value(root / path.lstrip("/") / "cpu.stat", "throttled_usec")
        elif "cpu" in names:
            mount = root / controllers if (root / controllers).is_dir() else root / "cpu"
            value = _stat_value(mount / path.lstrip("/") / "cpu.stat", "throttled_time")
            value = None if value is None else value / 1000  # v1 counts nanoseconds
        else:
            continue
        if value is not None:
            return value
    return None


def _stat_value(path: Path, key: str) -> float | None:
    try:
        for line in path.read_text().splitlines():
            name, _, number = line.partition(" ")
            if name == key:
                return float(number)
    except (OSError, ValueError):
        return None
    return None


def _steal_s() -> float | None:
    return getattr(psutil.cpu_times(), "steal", None)


class CpuPressureWatch(threading.Thread):
    """Polls the run queue from start() until stop(); `result` then holds the window's CpuPressure."""

    def __init__(self, max_s: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="nccldoctor-cpu-pressure", daemon=True)
        self.max_s = max_s
        self.clock = clock
        self.result: CpuPressure | None = None
        self._done = threading.Event()

    def stop(self) -> CpuPressure | None:
        self._done.set()
        self.join(timeout=5.0)
        return self.result

    def run(self) -> None:
        start, psi0, steal0, throttled0 = self.clock(), psi_totals(), _steal_s(), throttled_us()
        polls = []
        while not self._done.is_set() and self.clock() - start < self.max_s:
            count = procs_running()
            if count is not None:
                polls.append(max(count - 1, 0))  # this poller was running when it read
            self._done.wait(POLL_S)
        window = max(self.clock() - start, 1e-3)
        self.result = pressure_between(
            window, psi0, psi_totals(), steal0, _steal_s(), throttled0, throttled_us(), polls
        )


def pressure_between(
    window_s: float,
    psi0: dict[str, int] | None,
    psi1: dict[str, int] | None,
    steal0: float | None,
    steal1: float | None,
    throttled0: float | None,
    throttled1: float | None,
    polls: list[int],
) -> CpuPressure:
    """The window's CpuPressure from the counters read at both ends and the run-queue polls."""
    cpus = psutil.cpu_count() or 1
    window_us = window_s * 1e6

    def psi(kind: str) -> float | None:
        if not psi0 or not psi1 or kind not in psi0 or kind not in psi1:
            return None
        return round(min(100.0, 100.0 * (psi1[kind] - psi0[kind]) / window_us), 1)

    steal = None if steal0 is None or steal1 is None else 100.0 * (steal1 - steal0) / (window_s * cpus)
    throttled = (
        None if throttled0 is None or throttled1 is None else 100.0 * (throttled1 - throttled0) / window_us
    )
    return CpuPressure(
        window_s=round(window_s, 3),
        cpu_count=cpus,
        runnable_mean=round(sum(polls) / len(polls), 2) if polls else 0.0,
        runnable_max=max(polls, default=0),
        steal_pct=None if steal is None else round(max(steal, 0.0), 1),
        psi_some_pct=psi("some"),
        psi_full_pct=psi("full"),
        throttled_pct=None if throttled is None else round(min(max(throttled, 0.0), 100.0), 1),
    )
