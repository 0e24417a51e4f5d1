"""Host contention: is a node busy with work that is not this job? (health probe, `host_contention`)

A collective runs at the pace of its slowest rank, so one node whose CPUs are taken by someone
else's process, or that is swapping, slows every node. Each node leader samples its own host
(`sample_host`), the samples travel through the key-value store as JSON, and node 0 judges them
all (`judge_hosts`) and prints one row per node (`host_rows`).

How the sample is taken, and why:
- CPU outside the job: two passes over the process table (psutil.process_iter), `window_s` apart,
  reading each process's own user+system CPU time; cores busy = CPU-seconds / window. Cheap (no
  per-process sleeps) and robust to processes that vanish, turn zombie or deny access between the
  passes: they are skipped. A process first seen in the second pass was started during the window
  and counts whole. The job is the given PIDs and their descendants, plus this process, its
  descendants and its ancestors (torchrun's agent, the shell, slurmstepd: the launcher is not a
  foreign load). Kernel threads (children of kthreadd) are left out: softirq and kworker time is
  mostly the job's own network and I/O. Children's CPU time that a parent collected (cutime) is
  left out too: it would count a long-lived child's whole life when it is reaped. Processes that
  start and end inside the window are not seen; `node_busy_cores` (every CPU's busy time over the
  same window) shows such unattributed load next to it.
- Memory: % available (the kernel's MemAvailable), PSI "some avg10" from /proc/pressure/memory
  (the % of the last 10 s in which at least one task stalled waiting for memory; None where the
  kernel has no PSI), swap used, and swap-in/out rates over the window (psutil's sin/sout).
- Load average and core count, both node-wide (in a container they are the host's). The load
  average is shown, never judged: it counts the job's own threads, and a container sees the
  whole host's.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from nccldoctor.cpupressure import CpuPressure
from nccldoctor.findings import Finding, make_finding

PSI_MEMORY = Path("/proc/pressure/memory")
MIB = 1024 * 1024
_CMDLINE_HEAD = 160  # characters of a process's command line kept for the report
_MIN_LISTED_CORES = 0.01  # a process below this is idle, not an offender worth listing


@dataclass(frozen=True)
class ProcessLoad:
    """One process outside the job and the CPU it used over the window."""

    pid: int
    name: str
    cores: float  # CPU-seconds / window: 1.0 is one core busy the whole window
    cmdline: str = ""  # the head of its command line; "" when unreadable

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessLoad:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class HostSample:
    """What one node's leader saw over the window; travels through the store as JSON."""

    host: str
    cpu_count: int  # logical CPUs of the node
    window_s: float  # the window actually measured (a little longer than asked)
    foreign_cores: float  # CPU used by processes outside the job, in cores
    job_cores: float  # CPU used by the job's processes, in cores
    node_busy_cores: float  # every CPU's busy time (kernel and short-lived processes included)
    top: tuple[ProcessLoad, ...]  # processes outside the job, busiest first
    load_avg: tuple[float, float, float]  # 1, 5, 15 minutes
    mem_available_pct: float
    mem_psi_some_avg10: float | None  # None: the kernel has no PSI
    swap_used_bytes: int
    swap_total_bytes: int
    swap_in_bytes_per_s: float
    swap_out_bytes_per_s: float

    @property
    def swap_bytes_per_s(self) -> float:
        return self.swap_in_bytes_per_s + self.swap_out_bytes_per_s

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostSample:
        """Rebuild from to_json()'s dict after a trip through JSON (lists back to tuples)."""
        values = _known(cls, data)
        values["top"] = tuple(ProcessLoad.from_json(p) for p in values.get("top", ()))
        values["load_avg"] = tuple(values["load_avg"])
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """When a node counts as contended. A node is flagged when any one limit is crossed.

    CPU outside the job is flagged at max(foreign_cores, foreign_fraction × cores): an absolute
    floor alone would flag every big GPU node for its monitoring daemons (kubelet, dcgm-exporter,
    log shippers: a few tenths of a core together), a fraction alone would flag a small box for
    noise. So a 2-core box is flagged from 0.5 cores, a 96-core node from 4.8.
    """

    foreign_cores: float = 0.5  # floor for CPU outside the job, in cores (one spinning process is 1.0)
    foreign_fraction: float = 0.05  # ...raised to this fraction of the node's cores on big nodes
    swap_bytes_per_s: float = 1.0 * MIB  # swap-in + swap-out: a rank that pages stalls its collective
    mem_available_pct: float = 10.0  # flagged below this % of memory available (near reclaim / OOM)
    psi_some_avg10: float = 10.0  # flagged at or above: % of the last 10 s some task waited for memory
    offender_cores: float = 0.05  # a process outside the job is named from this many cores
    offenders_named: int = 3  # how many processes the message and the fix name

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"Thresholds.{f.name} must be >= 0, got {getattr(self, f.name)}")
        if not 0 <= self.foreign_fraction <= 1:
            raise ValueError(f"Thresholds.foreign_fraction must be in [0, 1], got {self.foreign_fraction}")
        if self.mem_available_pct > 100:
            raise ValueError(
                f"Thresholds.mem_available_pct must be in [0, 100], got {self.mem_available_pct}"
            )
        if self.offenders_named < 1:
            raise ValueError(f"Thresholds.offenders_named must be >= 1, got {self.offenders_named}")

    def foreign_limit(self, cpu_count: int) -> float:
        """Cores of CPU outside the job from which a node with `cpu_count` CPUs is flagged."""
        return max(self.foreign_cores, self.foreign_fraction * cpu_count)


# --- sampling ---------------------------------------------------------------------------------


class _Proc(NamedTuple):
    ppid: int | None
    name: str
    cpu: float | None  # own user + system seconds; None when unreadable
    created: float | None


def sample_host(job_pids: Iterable[int], window_s: float = 1.0, *, top: int = 5) -> HostSample:
    """Sample this host for `window_s` seconds; `job_pids`: the job's processes on this node.

    `top`: how many of the busiest processes outside the job to keep (the judge names fewer).
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be > 0 seconds, got {window_s}")
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    swap0, cpu0 = psutil.swap_memory(), psutil.cpu_times()
    start = time.monotonic()
    before = _snapshot()
    mid0 = (start + time.monotonic()) / 2
    time.sleep(window_s)
    start = time.monotonic()
    after = _snapshot()
    mid1 = (start + time.monotonic()) / 2
    swap1, cpu1 = psutil.swap_memory(), psutil.cpu_times()
    window = max(mid1 - mid0, 1e-3)  # each process was read about this far apart

    foreign, job_cpu = _split_cpu(before, after, {*job_pids, os.getpid()})
    busiest = sorted(foreign, key=foreign.__getitem__, reverse=True)[:top]
    mem = psutil.virtual_memory()
    return HostSample(
        host=socket.gethostname(),
        cpu_count=psutil.cpu_count() or 1,
        window_s=round(window, 3),
        foreign_cores=round(sum(foreign.values()) / window, 3),
        job_cores=round(job_cpu / window, 3),
        node_busy_cores=round((_busy(cpu1) - _busy(cpu0)) / window, 3),
        top=tuple(
            ProcessLoad(pid, after[pid].name, round(foreign[pid] / window, 3), _cmdline_head(pid))
            for pid in busiest
            if foreign[pid] / window >= _MIN_LISTED_CORES
        ),
        load_avg=tuple(round(x, 2) for x in psutil.getloadavg()),
        mem_available_pct=round(100.0 * mem.available / mem.total, 2) if mem.total else 0.0,
        mem_psi_some_avg10=psi_some_avg10(),
        swap_used_bytes=int(swap1.used),
        swap_total_bytes=int(swap1.total),
        swap_in_bytes_per_s=round(max(swap1.sin - swap0.sin, 0) / window, 1),
        swap_out_bytes_per_s=round(max(swap1.sout - swap0.sout, 0) / window, 1),
    )


def _snapshot() -> dict[int, _Proc]:
    """One pass over the process table. Processes that vanish are skipped by process_iter; a value
    that cannot be read (AccessDenied, ZombieProcess) comes back as None."""
    procs = {}
    for p in psutil.process_iter(["ppid", "name", "cpu_times", "create_time"], ad_value=None):
        info = p.info
        times = info["cpu_times"]
        cpu = times.user + times.system if times is not None else None
        procs[p.pid] = _Proc(info["ppid"], info["name"] or "?", cpu, info["create_time"])
    return procs


def _split_cpu(
    before: Mapping[int, _Proc], after: Mapping[int, _Proc], job_roots: set[int]
) -> tuple[dict[int, float], float]:
    """CPU-seconds used between the passes: per process outside the job, and the job's total."""
    job = _job(after, job_roots, os.getpid())
    kernel = _kernel_threads(after)
    foreign: dict[int, float] = {}
    job_cpu = 0.0
    for pid, proc in after.items():
        used = _cpu_used(before.get(pid), proc)
        if used is None or pid in kernel:
            continue
        if pid in job:
            job_cpu += used
        else:
            foreign[pid] = used
    return foreign, job_cpu


def _cpu_used(prev: _Proc | None, now: _Proc) -> float | None:
    """CPU-seconds a process used between the passes; None when it cannot be told."""
    if now.cpu is None:
        return None
    if prev is None or prev.created != now.created:  # started during the window (or a reused PID)
        return now.cpu
    if prev.cpu is None:
        return None
    return max(now.cpu - prev.cpu, 0.0)


def _job(procs: Mapping[int, _Proc], roots: set[int], me: int) -> set[int]:
    """The roots and all their descendants, plus `me`'s ancestors (the launcher chain)."""
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        if proc.ppid is not None:
            children.setdefault(proc.ppid, []).append(pid)
    job, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in job:
            job.add(pid)
            todo.extend(children.get(pid, ()))
    ancestors: set[int] = set()
    pid = procs[me].ppid if me in procs else None
    while pid and pid not in ancestors:  # PID 0 (the kernel) ends the chain
        ancestors.add(pid)
        pid = procs[pid].ppid if pid in procs else None
    return job | ancestors


def _kernel_threads(procs: Mapping[int, _Proc]) -> set[int]:
    """PID 0, kthreadd (PID 2) and its children. Only when PID 2 is kthreadd: in a container's
    PID namespace PID 2 is an ordinary process (and kernel threads are not visible at all)."""
    if 2 not in procs or procs[2].name != "kthreadd":
        return {0}
    return {0, 2} | {pid for pid, proc in procs.items() if proc.ppid == 2}


def _busy(times: Any) -> float:
    """Busy seconds summed over all CPUs: not idle, not waiting for I/O, not stolen (guest time is
    already in user)."""
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


def _cmdline_head(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())[:_CMDLINE_HEAD]
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def psi_some_avg10(path: Path = PSI_MEMORY) -> float | None:
    """ "some avg10" from a PSI file ("some avg10=1.53 avg60=0.40 avg300=0.08 total=12345");
    None when the file is missing or unreadable (no PSI, or booted with psi=0: EOPNOTSUPP)."""
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "some":
            values = dict(item.partition("=")[::2] for item in rest.split())
            try:
                return float(values["avg10"])
            except (KeyError, ValueError):
                return None
    return None


# --- judging ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Crowding:
    """A node that was oversubscribed while the ranks were measured, and the slow ranks on it
    whose slowness that explains (they are not named stragglers: see stragglers.py)."""

    pressure: CpuPressure
    excused: tuple[tuple[int, float], ...]  # (rank, score)

    def sentence(self) -> str:
        ranks = ", ".join(f"rank {rank} (score {score:.2f})" for rank, score in self.excused)
        return (
            f"the CPUs were oversubscribed while the ranks were measured: {self.pressure.describe()}; "
            f"{ranks} slower by no more than that explains, so not named a straggler"
        )


def judge_hosts(
    samples: Mapping[int, HostSample],
    thresholds: Thresholds = Thresholds(),
    crowding: Mapping[int, Crowding] | None = None,
) -> list[Finding]:
    """One `host_contention` warning per node (keyed by node rank) that crosses any threshold
    or whose oversubscription excused a slow rank (`crowding`)."""
    findings = []
    for node in sorted(samples):
        sample = samples[node]
        crowded = (crowding or {}).get(node)
        problems = _problems(sample, thresholds, crowded)
        if not problems:
            continue
        where = f"node {node} ({sample.host})"
        offenders = _offenders(sample, thresholds)
        busy = [text for reason, text in problems.items() if reason != "oversubscribed"]
        crowded_text = [problems["oversubscribed"]] if "oversubscribed" in problems else []
        message = "; ".join(
            ([f"{where} is busy with work outside the job: " + "; ".join(busy)] if busy else [])
            + ([f"on {where} {crowded_text[0]}"] if crowded_text else [])
        )
        findings.append(
            make_finding(
                "host_contention",
                message,
                nodes=[node],
                evidence=_evidence(sample, thresholds, list(problems), crowded),
                fix=_fix(where, problems, offenders),
            )
        )
    return findings


def _problems(s: HostSample, t: Thresholds, crowded: Crowding | None = None) -> dict[str, str]:
    """What is wrong on one node: reason key -> sentence; empty when nothing is."""
    problems = {}
    if crowded is not None:
        problems["oversubscribed"] = crowded.sentence()
    limit = t.foreign_limit(s.cpu_count)
    if s.foreign_cores >= limit:
        named = ", ".join(f"PID {p.pid} {p.name} {p.cores:.1f} cores" for p in _offenders(s, t))
        problems["cpu"] = (
            f"processes outside the job use {s.foreign_cores:.1f} of {s.cpu_count} cores "
            f"(limit {limit:.1f}): {named or 'spread thinly over many processes'}"
        )
    if s.swap_bytes_per_s >= t.swap_bytes_per_s:
        problems["swap"] = (
            f"swapping {s.swap_bytes_per_s / MIB:.1f} MiB/s (in {s.swap_in_bytes_per_s / MIB:.1f}, "
            f"out {s.swap_out_bytes_per_s / MIB:.1f}; limit {t.swap_bytes_per_s / MIB:g} MiB/s)"
        )
    if s.mem_available_pct < t.mem_available_pct:
        problems["memory"] = (
            f"only {s.mem_available_pct:.1f}% of memory available (limit {t.mem_available_pct:g}%)"
        )
    if s.mem_psi_some_avg10 is not None and s.mem_psi_some_avg10 >= t.psi_some_avg10:
        problems["memory_pressure"] = (
            f"tasks stalled waiting for memory {s.mem_psi_some_avg10:.1f}% of the last 10 s "
            f"(PSI memory some avg10; limit {t.psi_some_avg10:g})"
        )
    return problems


def _offenders(s: HostSample, t: Thresholds) -> list[ProcessLoad]:
    return [p for p in s.top if p.cores >= t.offender_cores][: t.offenders_named]


def _fix(where: str, problems: Mapping[str, str], offenders: list[ProcessLoad]) -> str:
    steps = []
    if "cpu" in problems and offenders:
        named = ", ".join(f"PID {p.pid} ({p.name}, {p.cores:.1f} cores)" for p in offenders)
        steps.append(f"stop or renice {named} on {where}")
    elif "cpu" in problems:
        steps.append(f"find what is running or blocked on {where} (top; ps -eo stat,pid,pcpu,args)")
    if problems.keys() & {"swap", "memory", "memory_pressure"}:
        steps.append(f"free memory on {where}: stop the largest processes (ps aux --sort=-rss | head)")
    if "oversubscribed" in problems:
        steps.append(
            f"give {where} a core per rank (fewer ranks, no other jobs; on a VM, dedicated vCPUs) "
            "and run again to judge its ranks"
        )
    return "; ".join(steps) + ", or drain the node"


def _evidence(s: HostSample, t: Thresholds, reasons: list[str], crowded: Crowding | None) -> dict[str, Any]:
    """The sample's numbers and the limit that applied; top_processes: busiest first, as sampled."""
    return {
        **(
            {"cpu_pressure": crowded.pressure.to_json(), "excused_ranks": [r for r, _ in crowded.excused]}
            if crowded
            else {}
        ),
        "host": s.host,
        "reasons": reasons,
        "foreign_cores": s.foreign_cores,
        "foreign_cores_limit": t.foreign_limit(s.cpu_count),
        "job_cores": s.job_cores,
        "node_busy_cores": s.node_busy_cores,
        "cpu_count": s.cpu_count,
        "load_avg": list(s.load_avg),
        "mem_available_pct": s.mem_available_pct,
        "mem_psi_some_avg10": s.mem_psi_some_avg10,
        "swap_in_bytes_per_s": s.swap_in_bytes_per_s,
        "swap_out_bytes_per_s": s.swap_out_bytes_per_s,
        "top_processes": [p.to_json() for p in s.top],
    }


# --- table ------------------------------------------------------------------------------------


def host_rows(
    samples: Mapping[int, HostSample],
    pressure: Mapping[int, CpuPressure] | None = None,
    crowding: Mapping[int, Crowding] | None = None,
    thresholds: Thresholds = Thresholds(),
) -> list[dict[str, Any]]:
    """One row per node for the health table, in node order; `status` is "ok" or what is wrong.
    `pressure`: each node's CPU crowding during the compute probes (nccldoctor.cpupressure)."""
    rows = []
    for node in sorted(samples):
        s = samples[node]
        cpu = (pressure or {}).get(node)
        crowded = (crowding or {}).get(node)
        busiest = s.top[0] if s.top else None
        rows.append(
            {
                "node": node,
                "host": s.host,
                "cpus": s.cpu_count,
                "load1": s.load_avg[0],
                "job_cores": s.job_cores,
                "foreign_cores": s.foreign_cores,
                "top_process": f"{busiest.pid} {busiest.name} ({busiest.cores:.1f})" if busiest else "",
                "mem_available_pct": s.mem_available_pct,
                "psi_some_avg10": s.mem_psi_some_avg10,
                "swap_used_mib": round(s.swap_used_bytes / MIB, 1),
                "swap_mib_per_s": round(s.swap_bytes_per_s / MIB, 2),
                "tasks_per_core": round(cpu.share_factor, 2) if cpu else None,
                "cpu_psi_some_pct": cpu.psi_some_pct if cpu else None,
                "steal_pct": cpu.steal_pct if cpu else None,
                "throttled_pct": cpu.throttled_pct if cpu else None,
                "status": ", ".join(_problems(s, thresholds, crowded)) or "ok",
            }
        )
    return rows


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of `cls` (a newer writer may add fields)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
