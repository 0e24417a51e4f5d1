"""The bench run (entered through nccldoctor.bench): measure, judge, report, exit code.

Flow (docs/ARCHITECTURE.md): parse flags -> join the job (store first) -> the store-only
phases -> the process group -> the other phases -> judge the rows -> rank 0 writes the report
through the sinks -> every rank exits with the same code. The phases and sinks come from the
caller (nccldoctor.bench), so this module knows no probe and no output format. A supervisor
thread on every rank bounds all of it by --timeout and turns a crash, a hang or a signal into
a partial report and exit code 3.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch
import torch.distributed as dist

from nccldoctor.analysis import judge_rows
from nccldoctor.config import BenchConfig, config_section, flag_disagreement, parse_args, shared_flags
from nccldoctor.environment import relevant_env
from nccldoctor.errors import OutputError, UsageError
from nccldoctor.findings import EXIT_INCOMPLETE, EXIT_USAGE, Finding
from nccldoctor.gate import file_problem, review
from nccldoctor.incomplete import diagnose_incomplete
from nccldoctor.nccl_capture import debug_files, environment
from nccldoctor.outdir import prepare_out_dir, write_report
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.progress import ProgressDisplay
from nccldoctor.report import Report, Sink, describe_environment, describe_job, main_rows
from nccldoctor.rows import Row
from nccldoctor.runtime import (
    Job,
    LaunchEnv,
    RankInfo,
    StoreUnreachable,
    backend_disagreement,
    choose_backend,
    connect_store,
    device_uuid,
    duplicate_gpus,
    hostname,
    init_process_group,
    node_label,
    publish_rank_info,
    rank_hint,
    read_launch_env,
    read_rank_infos,
    run_prefix,
    wait_for,
)
from nccldoctor.signals import EarlySignals
from nccldoctor.speed import speed_section
from nccldoctor.storeio import get_present
from nccldoctor.supervisor import Cause, RankState, Supervisor, cause_of
from nccldoctor.sweepspec import backend_mismatch

# Collectives time out a little after the run's deadline, so the supervisor (which writes a
# report) always acts before the backend's own timeout (which, for NCCL, may kill the process).
BACKEND_TIMEOUT_MARGIN_S = 30.0


class Recorder:
    """Rows, findings and sections so far, shared with the supervisor thread for a partial report.

    Findings keep the order of the report: the store-only phases' first, then (at report time)
    what the rows show, then the other phases'."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: list[Row] = []
        self.early: list[Finding] = []  # the store-only phases' findings
        self.findings: list[Finding] = []
        self.sections: dict[str, Any] = {}

    def add(self, result: PhaseResult, early: bool = False) -> None:
        with self._lock:
            self.rows.extend(result.rows)
            (self.early if early else self.findings).extend(result.findings)
            self.sections.update(result.sections)

    def snapshot(self) -> tuple[list[Row], list[Finding], list[Finding], dict[str, Any]]:
        with self._lock:
            return list(self.rows), list(self.early), list(self.findings), dict(self.sections)


class Bench:
    """Join the job, loop over the phases, judge, write the report, agree on the exit code."""

    def __init__(
        self,
        config: BenchConfig,
        launch: LaunchEnv,
        store: dist.Store,
        supervisor: Supervisor,
        phases: list[Phase],
        sinks: Callable[[Any], list[Sink]],
    ) -> None:
        self.config = config
        self.launch = launch
        self.store = store
        self.supervisor = supervisor
        self.phases = phases
        self.sinks = sinks
        self.recorder = Recorder()
        self.recorder.sections["config"] = config_section(config)
        self.job: Job | None = None
        self.out_dir: Path | None = None
        self.init_env: dict[str, str] = {}  # what the phases set around init_process_group
        self.display = ProgressDisplay(enabled=launch.rank == 0 and not config.run.quiet)
        self.started = time.monotonic()
        self.phase_seconds: dict[str, float] = {}  # phase name -> how long it ran on this rank
        supervisor.on_stop_display = self.display.stop
        supervisor.on_incomplete = self.write_incomplete
        supervisor.local_processes = self.local_processes

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> int:
        backend, device = self.prepare()
        ranks = self.agree_on_flags()
        self.job = Job(launch=self.launch, backend=backend, device=device, ranks=ranks)
        ctx = self.context()
        gpus_ok = self.check_gpus()
        joined = self.run_store_only(ctx) and gpus_ok  # the network checks still say what they find
        if joined:
            self.join_process_group(ctx)
            self.run_measurements(ctx)
        self.supervisor.enter("report")
        code = None
        if self.launch.rank == 0:
            code = self.deliver(self.build_report(complete=True))
        code = self.supervisor.finish(code)
        if joined:
            dist.destroy_process_group()
        return code

    def context(self) -> PhaseContext:
        return PhaseContext(
            job=self.job,
            config=self.config,
            step=self.step,
            store=self.store,
            enter=self.supervisor.enter,
            remaining_s=self.supervisor.remaining_s,
            rows=lambda: self.recorder.snapshot()[0],
            out_dir=self.prepare_out_dir,
            run_prefix=run_prefix(self.launch),
            seconds=self.phase_seconds,
        )

    def run_store_only(self, ctx: PhaseContext) -> bool:
        """The phases that need no process group; False when one says it could not work."""
        for phase in self.phases:
            if not phase.needs_process_group and not self.run_phase(phase, ctx, early=True):
                return False
        return True

    def join_process_group(self, ctx: PhaseContext) -> None:
        self.supervisor.enter("init_process_group")
        env: dict[str, str] = {}
        for phase in self.later_phases:
            env.update(phase.init_env(ctx))
        self.init_env = env
        with environment(env):
            self.job.backend_started_at_init = init_process_group(
                self.store,
                self.launch,
                self.job.backend,
                self.job.device,
                self.config.run.timeout + BACKEND_TIMEOUT_MARGIN_S,
            )

    def run_measurements(self, ctx: PhaseContext) -> None:
        self.display.start(sum(phase.planned_steps(ctx) for phase in self.later_phases))
        for phase in self.later_phases:
            self.run_phase(phase, ctx)
        self.display.stop()

    @property
    def later_phases(self) -> list[Phase]:
        return [phase for phase in self.phases if phase.needs_process_group]

    def run_phase(self, phase: Phase, ctx: PhaseContext, early: bool = False) -> bool:
        """Run one phase, keep what it found and published; False when it says stop."""
        started = time.monotonic()
        # What the phase records early lands where its result will: in the report's order.
        result = phase.run(dataclasses.replace(ctx, record=functools.partial(self.recorder.add, early=early)))
        ctx.seconds[phase.name] = ctx.seconds.get(phase.name, 0.0) + time.monotonic() - started
        ctx.published[phase.name] = result.published
        self.recorder.add(result, early=early)
        return not result.stop

    def step(self, label: str) -> None:
        self.supervisor.enter(label)
        self.display.advance(label)

    def prepare(self) -> tuple[str, torch.device]:
        """Check what can be checked alone, publish who we are, make the output folder."""
        self.supervisor.enter("join")
        backend, device = choose_backend(
            self.config.run.backend, self.launch.local_rank, node=node_label(self.launch)
        )
        mismatch = backend_mismatch(self.config.sweep.settings, backend)
        if mismatch:
            raise UsageError(mismatch)
        root = self.config.collectives.root
        if root >= self.launch.world_size:
            raise UsageError(f"--root {root} is not a rank of this job (world size {self.launch.world_size})")
        publish_rank_info(
            self.store,
            RankInfo(
                rank=self.launch.rank,
                local_rank=self.launch.local_rank,
                node_rank=self.launch.node_rank,
                hostname=hostname(),
                pid=os.getpid(),
                device=str(device),
                backend=backend,
                gpu_uuid=device_uuid(device),
                env=relevant_env(),
                flags=json.loads(json.dumps(shared_flags(self.config))),  # as the store will hand it back
            ),
        )
        if self.launch.rank == 0:
            self.out_dir = self.prepare_out_dir()
        return backend, device

    def agree_on_flags(self) -> list[RankInfo]:
        """Store only: every rank must run the same probes and sizes, on the same backend and
        device type, or they hang each other.
        Returns every rank's info on rank 0 (which the report needs too), [] elsewhere."""
        self.supervisor.enter("flag check")
        infos = []
        if self.launch.rank == 0:
            infos = read_rank_infos(self.store, self.launch.world_size, self.supervisor.remaining_s())
            problem = (
                flag_disagreement({i.rank: i.flags for i in infos})
                or backend_disagreement(infos)
                or file_problem(self.config.gate)  # only rank 0 reads --expect and --baseline
            )
            self.store.set("flags_verdict", problem or "")
        wait_for(self.store, ["flags_verdict"], self.supervisor.remaining_s())
        problem = self.store.get("flags_verdict").decode()
        if problem:
            raise UsageError(problem)
        return infos

    def check_gpus(self) -> bool:
        """Store only: False when ranks of one node share a GPU (NCCL would fail in init with
        "Duplicate GPU detected"); rank 0 then records a duplicate_gpu finding naming them."""
        self.supervisor.enter("gpu check")
        if self.launch.rank == 0:
            findings = duplicate_gpus(self.job.ranks)
            self.recorder.add(PhaseResult(findings=findings), early=True)
            self.store.set("gpus_verdict", "duplicate" if findings else "")
        wait_for(self.store, ["gpus_verdict"], self.supervisor.remaining_s())
        return not self.store.get("gpus_verdict")

    def prepare_out_dir(self) -> Path:
        if self.out_dir is None:
            self.out_dir = prepare_out_dir(self.config.run.out)
        return self.out_dir

    # -- the report ----------------------------------------------------------------------------
    def build_report(self, complete: bool, extra: list[Finding] | None = None) -> Report:
        rows, early, findings, sections = self.recorder.snapshot()
        job = self.job_for_report()
        collectives = self.config.collectives
        judged = judge_rows(main_rows(rows), collectives.expect_busbw, job.nodes_of, collectives.probes)
        speed = speed_section(
            main_rows(rows),
            sections.get("network"),
            collectives.expect_busbw,
            job.launch.nnodes,
            job.backend,
            os.environ,
        )
        if speed is not None:
            sections = {"speed": speed, **sections}
        sections["timing"] = self.timing()
        report = Report(
            job=describe_job(job),
            environment=describe_environment(job.ranks),
            results=rows,
            findings=(extra or []) + early + judged + findings,
            complete=complete,
            strict=self.config.run.strict,
            sections=sections,
        )
        return review(report, self.config.gate)

    def timing(self) -> dict[str, Any]:
        """The `timing` section: rank 0's wall time from joining the job to the report, and each
        phase's share of it (the rest is joining, init_process_group and judging)."""
        return {
            "run_s": round(time.monotonic() - self.started, 3),
            "phases_s": {name: round(seconds, 3) for name, seconds in self.phase_seconds.items()},
        }

    def deliver(self, report: Report) -> int:
        """Write the report; its exit code, or 3 when it could not be written (a full or
        read-only disk): one line, no traceback, and the other ranks get the 3 from finish()."""
        try:
            self.emit(report)
        except (OutputError, UsageError) as exc:  # UsageError: the folder could not be made
            print(f"nccldoctor: error: {exc}", file=sys.stderr)
            return EXIT_INCOMPLETE
        return report.exit_code

    def emit(self, report: Report) -> None:
        write_report(report, self.prepare_out_dir(), self.sinks(self.config.run))

    def write_incomplete(self, cause: Cause, states: list[RankState]) -> None:
        """Called by the supervisor on the one rank chosen to write the partial report."""
        nccl_logs = debug_files(self.init_env, os.environ, os.getpid())  # NCCL's own WARN lines
        nodes_of = self.job_for_report().nodes_of
        extra = diagnose_incomplete(cause, states, self.supervisor.label, nodes_of, nccl_logs)
        self.deliver(self.build_report(complete=False, extra=extra))  # 3 either way

    def local_processes(self) -> dict[int, str]:
        """The state of this node's other ranks' processes, for a partial report: they share this
        rank's PID namespace, so a frozen rank (stopped, or stuck in the kernel) is told apart
        from a dead one. Called by the supervisor as the run ends; ranks are numbered node by node."""
        first = self.launch.node_rank * self.launch.local_world_size
        peers = [r for r in range(first, first + self.launch.local_world_size) if r != self.launch.rank]
        raws = get_present(self.supervisor.store, [f"info/{r}" for r in peers])
        states = {}
        for rank, raw in zip(peers, raws, strict=True):
            if raw is None:
                continue
            info = RankInfo(**json.loads(raw))
            if info.hostname == hostname():
                states[rank] = process_state(info.pid)
        return states

    def job_for_report(self) -> Job:
        """The job, with every rank's info, also when the run stopped before rank 0 read it
        (a stop before the process group, or a surviving rank writing for a lost rank 0)."""
        if self.job is None:
            self.job = Job(launch=self.launch, backend="unknown", device=torch.device("cpu"))
        if not self.job.ranks:
            # The supervisor's own store client: the main thread's may be stuck in a blocking
            # wait (init_process_group waiting for a lost rank) and hold that client's lock.
            self.job.ranks = _available_rank_infos(self.supervisor.store, self.launch.world_size)
        return self.job


def process_state(pid: int) -> str:
    """'stopped' (T: SIGSTOP, a debugger, a paused container), 'disk-sleep' (D: stuck in the
    kernel, a hung driver or filesystem), 'zombie', 'gone', or psutil's word for a live one."""
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.Error:
        return "unknown"
    return "stopped" if status == psutil.STATUS_TRACING_STOP else status


def _available_rank_infos(store: dist.Store, world_size: int) -> list[RankInfo]:
    """The RankInfo of every rank that published one (a partial report needs no more)."""
    raws = get_present(store, [f"info/{r}" for r in range(world_size)])  # batched, not per rank
    return [RankInfo(**json.loads(raw)) for raw in raws if raw is not None]


def _say(launch_rank: int, message: str) -> None:
    if launch_rank == 0:
        print(f"nccldoctor: error: {message}", file=sys.stderr)


def run(
    argv: list[str] | None,
    plan: Callable[[BenchConfig], list[Phase]],
    sinks: Callable[[Any], list[Sink]],
    early: EarlySignals | None = None,
) -> int:
    """The whole bench on this rank: `plan` gives the phases for the config, `sinks` the
    report's outputs for the run's output options. Returns the exit code every rank agreed on."""
    try:
        config = parse_args(argv)
        launch = read_launch_env()
        phases = plan(config)
    except UsageError as exc:
        _say(rank_hint(), str(exc))
        return EXIT_USAGE
    try:
        # Two clients: the supervisor's beats must never queue behind the main thread's calls.
        main_store = connect_store(launch, config.run.timeout, serve=True)
        watch_store = (
            connect_store(launch, config.run.timeout, serve=False) if launch.distributed else main_store
        )
    except StoreUnreachable as exc:
        print(f"nccldoctor: rank {launch.rank}: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    prefix = run_prefix(launch)
    store = dist.PrefixStore(prefix, main_store)
    supervisor = Supervisor(
        rank=launch.rank,
        world_size=launch.world_size,
        store=dist.PrefixStore(prefix, watch_store),
        step_store=store,
        deadline_s=config.run.timeout,
        silence_s=config.run.silence,
    )
    with supervisor:
        if early is not None and early.received:  # told to stop before we could watch
            supervisor.abort(Cause("signal", f"received {signal.Signals(early.received[0]).name}"))
        bench = Bench(config, launch, store, supervisor, phases, sinks)
        try:
            return bench.run()
        except Exception as exc:
            supervisor.abort(cause_of(exc))
