"""The bench run (entered through nccldoctor.bench): measure, judge, report, exit code.

Flow (see DESIGN.md): parse flags -> join the job (store first, then the process group) ->
run the probes -> judge the rows -> rank 0 writes the report -> every rank exits with the
same code. A supervisor thread on every rank bounds all of it by --timeout and turns a
crash, a hang or a signal into a partial report and exit code 3.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from nccldoctor.analysis import judge_rows
from nccldoctor.config import BenchConfig, config_section, flag_disagreement, parse_args, shared_flags
from nccldoctor.environment import relevant_env
from nccldoctor.errors import UsageError
from nccldoctor.findings import EXIT_INCOMPLETE, EXIT_USAGE, Finding
from nccldoctor.incomplete import diagnose_incomplete
from nccldoctor.nccl_capture import (
    NcclCapture,
    environment,
    judge_captures,
    plan_capture,
    read_capture,
    this_process_files,
)
from nccldoctor.netcheck import NetworkCheck, NetworkPlan
from nccldoctor.outdir import prepare_out_dir
from nccldoctor.probes import REGISTRY, ProbeContext, ProbeResult
from nccldoctor.probes.checkpoint import judge_checkpoint, round_trip
from nccldoctor.probes.ddp import WINDOW, DdpBenchmark, gather_summaries, report_ddp
from nccldoctor.probes.health import STEPS as HEALTH_STEPS
from nccldoctor.probes.health import HealthPhase
from nccldoctor.probes.nic_sweep import iface_variants, report_sweep, sweep_config
from nccldoctor.probes.settings_sweep import (
    LOG_ROUND,
    backend_logs_tuning,
    interleaved,
    report_settings,
    round_name,
    setting_variants,
)
from nccldoctor.probes.stragglers import ScoreThresholds
from nccldoctor.progress import ProgressDisplay
from nccldoctor.report import Report, describe_environment, describe_job
from nccldoctor.reports import emit_all, make_sinks
from nccldoctor.runtime import (
    Job,
    LaunchEnv,
    RankInfo,
    StoreUnreachable,
    choose_backend,
    connect_store,
    hostname,
    init_process_group,
    publish_rank_info,
    read_launch_env,
    read_rank_infos,
    run_prefix,
    wait_for,
)
from nccldoctor.signals import EarlySignals
from nccldoctor.supervisor import Cause, RankState, Supervisor, cause_of
from nccldoctor.sweepspec import backend_mismatch
from nccldoctor.variants import Variant, VariantOutcome, VariantRunner

# Collectives time out a little after the run's deadline, so the supervisor (which writes a
# report) always acts before the backend's own timeout (which, for NCCL, may kill the process).
BACKEND_TIMEOUT_MARGIN_S = 30.0
VARIANT_TIMEOUT_S = 90.0  # one variant of a sweep: start-up, process group, measurement
REPORT_RESERVE_S = 10.0  # a sweep leaves this much of the deadline for the report
DDP_DISPLAY_STEPS = 3  # model, checkpoint, and about one all_reduce at a bucket size


class Recorder:
    """Rows and findings so far, shared with the supervisor thread for a partial report."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rows: list[dict] = []
        self.findings: list[Finding] = []

    def add(self, result: ProbeResult) -> None:
        with self._lock:
            self.rows.extend(result.rows)
            self.findings.extend(result.findings)

    def snapshot(self) -> tuple[list[dict], list[Finding]]:
        with self._lock:
            return list(self.rows), list(self.findings)


class Bench:
    def __init__(
        self, config: BenchConfig, launch: LaunchEnv, store: dist.Store, supervisor: Supervisor
    ) -> None:
        self.config = config
        self.launch = launch
        self.store = store
        self.supervisor = supervisor
        self.recorder = Recorder()
        self.sweep_rows: list[dict] = []  # the settings sweep's rows, labelled with their setting
        self.probe_seconds = 0.0  # how long the main probes took: a yardstick for a sweep's runs
        self.job: Job | None = None
        self.network: NetworkCheck | None = None
        self.out_dir: Path | None = None
        self.sections: dict[str, dict] = {"config": config_section(config)}  # and "network", ...
        self.display = ProgressDisplay(enabled=launch.rank == 0 and not config.run.quiet)
        supervisor.on_stop_display = self.display.stop
        supervisor.on_incomplete = self.write_incomplete

    # -- the run -------------------------------------------------------------------------------
    def run(self) -> int:
        backend, device = self.prepare()
        ranks = self.agree_on_flags()
        self.network = NetworkCheck(
            self.store,
            self.launch,
            self.config.network,
            backend,
            self.supervisor.remaining_s,
            self.supervisor.enter,
        )
        plan = self.network.run()
        self.job = Job(launch=self.launch, backend=backend, device=device, ranks=ranks)
        if plan.go:
            self.measure(plan)
        self.supervisor.enter("report")
        code = None
        if self.launch.rank == 0:
            report = self.build_report(complete=True)
            self.emit(report)
            code = report.exit_code
        code = self.supervisor.finish(code)
        if plan.go:
            dist.destroy_process_group()
        return code

    def step(self, label: str) -> None:
        self.supervisor.enter(label)
        self.display.advance(label)

    def prepare(self) -> tuple[str, torch.device]:
        """Check what can be checked alone, publish who we are, make the output folder."""
        self.supervisor.enter("join")
        backend, device = choose_backend(self.config.run.backend, self.launch.local_rank)
        mismatch = backend_mismatch(self.config.sweep.settings, backend)
        if mismatch:
            raise UsageError(mismatch)
        if self.config.collectives.root >= self.launch.world_size:
            raise UsageError(
                f"--root {self.config.collectives.root} is not a rank of this job "
                f"(world size {self.launch.world_size})"
            )
        publish_rank_info(
            self.store,
            RankInfo(
                rank=self.launch.rank,
                local_rank=self.launch.local_rank,
                node_rank=self.launch.node_rank,
                hostname=hostname(),
                pid=os.getpid(),
                device=str(device),
                env=relevant_env(),
                flags=json.loads(json.dumps(shared_flags(self.config))),  # as the store will hand it back
            ),
        )
        if self.launch.rank == 0:
            self.out_dir = self.prepare_out_dir()
        return backend, device

    def agree_on_flags(self) -> list[RankInfo]:
        """Store only: every rank must run the same probes and sizes, or they hang each other.
        Returns every rank's info on rank 0 (which the report needs too), [] elsewhere."""
        self.supervisor.enter("flag check")
        infos = []
        if self.launch.rank == 0:
            infos = read_rank_infos(self.store, self.launch.world_size, self.supervisor.remaining_s())
            problem = flag_disagreement({i.rank: i.flags for i in infos})
            self.store.set("flags_verdict", problem or "")
        wait_for(self.store, ["flags_verdict"], self.supervisor.remaining_s())
        problem = self.store.get("flags_verdict").decode()
        if problem:
            raise UsageError(problem)
        return infos

    def measure(self, plan: NetworkPlan) -> None:
        """Join the process group, run the probes, then the per-NIC sweep."""
        self.supervisor.enter("init_process_group")
        capture = self.plan_nccl_capture()
        with environment(capture.set_env if capture else {}):
            init_process_group(
                self.store,
                self.launch,
                self.job.backend,
                self.job.device,
                self.config.run.timeout + BACKEND_TIMEOUT_MARGIN_S,
            )
        collectives = self.config.collectives
        probes = [REGISTRY[name](collectives) for name in collectives.probes]
        context = ProbeContext(job=self.job, config=collectives, step=self.step)
        sweep = iface_variants(plan.sweep, self.job.backend)
        settings = setting_variants(self.config.sweep.settings) if self.config.sweep.settings else []
        runs = interleaved(
            settings, self.config.sweep.repeats, log_round=backend_logs_tuning(self.job.backend, os.environ)
        )
        steps = sum(p.planned_steps(self.job) for p in probes) + len(sweep) + len(runs)
        ddp_steps = DDP_DISPLAY_STEPS + 2 * self.config.ddp.steps // WINDOW if self.config.ddp.enabled else 0
        self.display.start(
            steps + ddp_steps + (capture is not None) + HEALTH_STEPS * self.config.health.enabled
        )
        started = time.monotonic()
        for probe in probes:
            self.recorder.add(probe.run(context))
        self.probe_seconds = time.monotonic() - started
        if self.config.health.enabled:
            self.check_health()
        if capture is not None:
            self.check_nccl_log(capture)
        if self.config.ddp.enabled:
            self.run_ddp()
        self.sweep_nics(sweep, plan.in_use)
        self.sweep_settings(settings, runs)
        self.display.stop()

    def check_health(self) -> None:
        """Stragglers, links, host contention and GPU health (probes.health)."""
        thresholds = ScoreThresholds(
            warn=self.config.health.straggler_warn, fail=self.config.health.straggler_fail
        )
        phase = HealthPhase(self.job, self.store, thresholds, self.step, self.supervisor.remaining_s)
        findings, sections = phase.run()
        self.sections.update(sections)
        self.recorder.add(ProbeResult(findings=findings))

    def plan_nccl_capture(self) -> NcclCapture | None:
        """NCCL only: have NCCL log INIT/NET to a private file during init (see nccl_capture)."""
        if self.job.backend != "nccl":
            return None
        return plan_capture(os.environ, Path(tempfile.mkdtemp(prefix="nccldoctor-nccl-")))

    def check_nccl_log(self, capture: NcclCapture) -> None:
        """What NCCL says it did (transport, interface) against the inventory and the prediction."""
        self.step("NCCL log")
        summary = read_capture(capture, os.getpid())
        entry = {"summary": summary.to_json() if summary else None, "note": capture.note}
        self.store.set(f"nccl/{self.launch.rank}", json.dumps(entry))
        if self.launch.rank == 0:
            keys = [f"nccl/{r}" for r in range(self.launch.world_size)]
            wait_for(self.store, keys, self.supervisor.remaining_s())
            published = {r: json.loads(raw) for r, raw in enumerate(self.store.multi_get(keys))}
            node_of = {r: self.job.node_of(r) for r in published}
            predicted = {n["node_rank"]: next(iter(n["chosen"]), None) for n in self.network.section["nodes"]}
            findings, section = judge_captures(published, node_of, self.network.nodes, predicted)
            self.sections["nccl"] = section
            self.recorder.add(ProbeResult(findings=findings))
            for log in (
                this_process_files(capture.pattern or "", os.getpid()) if capture.own_directory else []
            ):
                shutil.copy(log, self.prepare_out_dir() / "nccl-rank0.log")  # the raw lines, for a human
        if capture.own_directory is not None:
            shutil.rmtree(capture.own_directory, ignore_errors=True)

    def sweep_nics(self, variants: list[Variant], in_use: str | None) -> None:
        """Each candidate interface in fresh processes (NCCL reads its variables once)."""
        if not variants:
            return
        runner = self.variant_runner()
        outcomes = []
        for index, variant in enumerate(variants):
            self.step(f"per-NIC sweep: {variant.name}")
            budget = min(VARIANT_TIMEOUT_S, self.supervisor.remaining_s() - REPORT_RESERVE_S)
            outcome = runner.run(index, variant, sweep_config(self.config.collectives), budget)
            if outcome is None:
                break
            outcomes.append(outcome)
        if self.launch.rank == 0:
            findings, section = report_sweep(
                variants, outcomes, in_use, self.job.backend, self.network.nodes, self.job.nodes_of
            )
            self.sections["nic_sweep"] = section
            self.recorder.add(ProbeResult(findings=findings))

    def run_ddp(self) -> None:
        """The reference DDP training benchmark (probes.ddp), then the optional checkpoint step."""
        rows, _ = self.recorder.snapshot()
        benchmark = DdpBenchmark(self.job, self.config.ddp, self.step)
        run = benchmark.run(rows)
        summaries = gather_summaries(run)
        records = None
        if self.config.ddp.ckpt_dir is not None:
            self.step("DDP benchmark: checkpoint round trip")
            records = round_trip(run.model, self.config.ddp.ckpt_dir, self.job)
        if self.launch.rank != 0:
            return
        findings, section = report_ddp(run, summaries)
        if records is not None:
            more, section["checkpoint"] = judge_checkpoint(records, self.config.ddp.ckpt_dir, self.job)
            findings += more
        self.sections["ddp"] = section
        self.recorder.add(ProbeResult(findings=findings))

    def sweep_settings(self, variants: list[Variant], plan: list[tuple[int, Variant]]) -> None:
        """Every --sweep setting in fresh processes, rounds interleaved; a failed one is not rerun."""
        if not plan:
            return
        runner = self.variant_runner()
        runs: list[tuple[int, VariantOutcome]] = []
        failed: set[str] = set()
        for index, (repeat, variant) in enumerate(plan):
            self.step(f"settings sweep: {variant.name} ({round_name(repeat)})")
            budget = min(
                VARIANT_TIMEOUT_S + 2 * self.probe_seconds, self.supervisor.remaining_s() - REPORT_RESERVE_S
            )
            outcome = runner.run(
                index,
                variant,
                self.config.collectives,
                budget,
                skip=variant.name in failed,
                log_nccl=repeat == LOG_ROUND,
            )
            if outcome is None:
                break
            runs.append((repeat, outcome))
            if not outcome.ok:
                failed.add(variant.name)
        if self.launch.rank == 0:
            nodes = sorted({info.node_rank for info in self.job.ranks})
            findings, section, rows = report_settings(variants, plan, runs, nodes)
            section["bench_pids"] = {info.rank: info.pid for info in self.job.ranks}  # the children differ
            self.sections["settings_sweep"] = section
            self.sweep_rows = rows
            self.recorder.add(ProbeResult(findings=findings))

    def variant_runner(self) -> VariantRunner:
        return VariantRunner(
            self.store, run_prefix(self.launch), self.launch, self.job.backend, self.supervisor.remaining_s
        )

    def prepare_out_dir(self) -> Path:
        if self.out_dir is None:
            self.out_dir = prepare_out_dir(self.config.run.out)
        return self.out_dir

    # -- the report ----------------------------------------------------------------------------
    def build_report(self, complete: bool, extra: list[Finding] | None = None) -> Report:
        rows, findings = self.recorder.snapshot()
        job = self.job_for_report()
        judged = judge_rows(
            rows, self.config.collectives.expect_busbw, job.nodes_of, self.config.collectives.probes
        )
        sections = dict(self.sections)
        network_findings = []
        if self.network is not None and self.network.section is not None:  # rank 0, or nothing yet
            sections["network"] = self.network.section
            network_findings = list(self.network.findings)
        return Report(
            job=describe_job(job),
            environment=describe_environment(job.ranks),
            results=rows + self.sweep_rows,
            findings=(extra or []) + network_findings + judged + findings,
            complete=complete,
            strict=self.config.run.strict,
            sections=sections,
        )

    def emit(self, report: Report) -> None:
        out_dir = self.prepare_out_dir()
        emit_all(report, out_dir, make_sinks(quiet=self.config.run.quiet))

    def write_incomplete(self, cause: Cause, states: list[RankState]) -> None:
        """Called by the supervisor on the one rank chosen to write the partial report."""
        extra = diagnose_incomplete(cause, states, self.supervisor.label, self.job_for_report().nodes_of)
        self.emit(self.build_report(complete=False, extra=extra))

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


def _available_rank_infos(store: dist.Store, world_size: int) -> list[RankInfo]:
    """The RankInfo of every rank that published one (a partial report needs no more)."""
    present = [r for r in range(world_size) if store.check([f"info/{r}"])]
    if len(present) == world_size:
        return read_rank_infos(store, world_size, 1.0)
    return [RankInfo(**json.loads(store.get(f"info/{r}"))) for r in present]


def _say(launch_rank: int, message: str) -> None:
    if launch_rank == 0:
        print(f"nccldoctor: error: {message}", file=sys.stderr)


def run(argv: list[str] | None = None, early: EarlySignals | None = None) -> int:
    rank_hint = int(os.environ.get("RANK", "0")) if os.environ.get("RANK", "0").isdigit() else 0
    try:
        config = parse_args(argv)
        launch = read_launch_env()
    except UsageError as exc:
        _say(rank_hint, str(exc))
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
    )
    with supervisor:
        if early is not None and early.received:  # told to stop before we could watch
            supervisor.abort(Cause("signal", f"received {signal.Signals(early.received[0]).name}"))
        bench = Bench(config, launch, store, supervisor)
        try:
            return bench.run()
        except Exception as exc:
            supervisor.abort(cause_of(exc))
