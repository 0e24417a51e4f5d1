"""The one interface every step of a bench run implements.

A run is a list of phases (built by `nccldoctor.probes.plan`): the network check, each
collective, health, the NCCL log, the DDP benchmark, the sweeps. The bench
(`nccldoctor.runner`) only loops over them:

    for phase in store-only phases:      phase.run(ctx)   # before the process group exists
    init_process_group(env = every phase's init_env(ctx))
    progress total = sum(phase.planned_steps(ctx))
    for phase in the other phases:       phase.run(ctx)

A phase reads what it needs from the context (the job, the config, the store, the deadline,
what earlier phases published), marks progress with `ctx.step(label)`, and returns a
PhaseResult: rows for `results[]`, findings, report sections (rank 0's), and what later phases
may use. It never prints and never writes the report. A section's tables are rendered by the
view registered under the section's name (`nccldoctor.reports.sections`), so `show`, the
terminal and Markdown render whatever sections a report has.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from nccldoctor.findings import Finding

if TYPE_CHECKING:  # torch loads in seconds; this module is imported by light tools too
    import torch.distributed as dist

    from nccldoctor.config import BenchConfig
    from nccldoctor.rows import Row
    from nccldoctor.runtime import Job


@dataclass
class PhaseResult:
    rows: list[Row] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)  # report.json top-level keys (rank 0)
    published: Any = None  # for later phases: ctx.published[phase.name]
    stop: bool = False  # a store-only phase found that the process group cannot work: measure nothing

    def __iadd__(self, other: PhaseResult) -> PhaseResult:
        self.rows += other.rows
        self.findings += other.findings
        self.sections.update(other.sections)
        return self


def _no_time_limit() -> float:
    return math.inf


def _nothing(*_args: object) -> None:
    return None


def _no_folder() -> Path:
    raise RuntimeError("this context has no report folder")


@dataclass
class PhaseContext:
    """What a phase may use. Every wait a phase makes is bounded by `remaining_s()`.

    A collective alone (a sweep worker, the DDP benchmark's bucket sizes) needs only the job
    and `step`; the bench fills in everything.
    """

    job: Job
    config: BenchConfig
    step: Callable[[str], None] = _nothing  # a progress step: the supervisor (a hang names it) and the bar
    store: dist.Store | None = None  # the run's prefixed store (torchrun's TCPStore)
    enter: Callable[[str], None] = _nothing  # names a step for the supervisor only (no progress bar)
    remaining_s: Callable[[], float] = _no_time_limit  # seconds left before the run's deadline
    record: Callable[[PhaseResult], None] = _nothing  # keep part of a result now: a partial report shows it
    rows: Callable[[], list[Row]] = list  # the rows recorded so far
    out_dir: Callable[[], Path] = _no_folder  # rank 0: the report folder (made on first use)
    run_prefix: str = ""  # the store prefix of this run (child processes extend it)
    published: dict[str, Any] = field(default_factory=dict)  # phase name -> what it published
    seconds: dict[str, float] = field(default_factory=dict)  # phase name -> how long it ran


class Phase(ABC):
    """One step of the run. Subclasses set `name` and fill in planned_steps and run."""

    name: ClassVar[str]
    # False: runs before the process group exists, talking through the store only (so a
    # broken network is reported instead of hanging init).
    needs_process_group: ClassVar[bool] = True

    def init_env(self, ctx: PhaseContext) -> Mapping[str, str]:
        """Environment variables to set while the process group is created (NCCL reads its
        logging variables then)."""
        return {}

    @abstractmethod
    def planned_steps(self, ctx: PhaseContext) -> int:
        """How many times run() will call ctx.step (the progress bar's share)."""

    @abstractmethod
    def run(self, ctx: PhaseContext) -> PhaseResult:
        """Run on every rank, in step with the others."""
