"""Fresh worker processes per setting: the mechanism behind the per-NIC and settings sweeps.

NCCL reads its environment (NCCL_SOCKET_IFNAME, NCCL_ALGO, NCCL_IB_HCA, ...) once per
process, and Gloo binds its interface when the process group forms, so a setting can only be
measured in new processes. For each variant every rank starts one child
(`python -m nccldoctor.worker`) with the variant's environment; the children form their own
process group through the job's rendezvous store under a key prefix of their own, run the
probes, and the child of rank 0 writes the rows to a file its parent reads.

All ranks move in step: rank 0 decides whether a variant runs and with which deadline, every
parent kills its child at that deadline, posts how the child ended, and rank 0 collects the
statuses before anyone starts the next variant. A child dies with its parent
(PR_SET_PDEATHSIG), so an aborted run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.distributed as dist

from nccldoctor.config import CollectiveOptions
from nccldoctor.nccl_capture import NcclCapture, plan_capture
from nccldoctor.nccl_tuning import TUNING_SUBSYSTEMS, read_child_log
from nccldoctor.phase import PhaseContext
from nccldoctor.rows import Row
from nccldoctor.runtime import LaunchEnv, wait_for
from nccldoctor.storeio import get_present
from nccldoctor.worker import spec_env

STATUS_GRACE_S = 15.0  # past the children's deadline, how long rank 0 waits for every status
VARIANT_TIMEOUT_S = 90.0  # one variant of a sweep: start-up, process group, measurement
REPORT_RESERVE_S = 10.0  # a sweep leaves this much of the deadline for the report


@dataclass(frozen=True)
class Variant:
    sweep: str  # which sweep it belongs to: "ifaces", "settings", ...
    name: str  # short label: "eth0", "NCCL_ALGO=Ring"
    env: dict[str, str] = field(default_factory=dict)  # set in the children's environment
    watch: tuple[str, ...] = ()  # variables the child reports as it sees them (proof of its setting)

    @property
    def setting(self) -> str:
        return setting_label(self.env)


def setting_label(env: dict[str, str]) -> str:
    """'NCCL_ALGO=Ring NCCL_PROTO=LL' (sorted, so one setting has one label), or 'defaults'."""
    return " ".join(f"{k}={v}" for k, v in sorted(env.items())) or "defaults"


@dataclass
class VariantOutcome:
    variant: Variant
    rows: list[Row]  # rank 0's copy of the children's rows (empty elsewhere)
    failures: dict[int, str]  # rank -> how its child failed
    seconds: float
    child: dict[str, Any] = field(default_factory=dict)  # rank 0's child: pid, env seen, phase times
    pids: dict[int, int] = field(default_factory=dict)  # rank -> its child's pid (rank 0 only)
    nccl_log: dict[str, Any] | None = None  # rank 0's child's NCCL log, when asked and captured
    skipped: bool = False  # rank 0 said not to run it (e.g. it failed in an earlier round)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def why(self) -> str | None:
        """The first failure; a timed-out rank is a symptom, an exit with an error the cause."""
        if not self.failures:
            return None
        ranked = sorted(self.failures.items(), key=lambda kv: ("timed out" in kv[1], kv[0]))
        rank, text = ranked[0]
        others = len(self.failures) - 1
        return f"rank {rank}: {text}" + (f" (and {others} more rank(s))" if others else "")


class VariantRunner:
    """Runs variants on every rank in step. `store` is the run's prefixed store."""

    @classmethod
    def for_phase(cls, ctx: PhaseContext, phases: str) -> VariantRunner:
        return cls(ctx.store, ctx.run_prefix, ctx.job.launch, ctx.job.backend, ctx.remaining_s, phases)

    def budget(self, extra_s: float = 0.0) -> float:
        """One variant's deadline: VARIANT_TIMEOUT_S (+ extra_s), leaving the report its time."""
        return min(VARIANT_TIMEOUT_S + extra_s, self.remaining_s() - REPORT_RESERVE_S)

    def __init__(
        self,
        store: dist.Store,
        run_prefix: str,
        launch: LaunchEnv,
        backend: str,
        remaining_s: Callable[[], float],
        phases: str,
    ) -> None:
        """`phases`: what each child runs, as "module:function" taking the collective options and
        returning phases (the sweep that owns this runner names it; see nccldoctor.worker)."""
        self.store = store
        self.phases = phases
        self.run_prefix = run_prefix
        self.launch = launch
        self.backend = backend
        self.remaining_s = remaining_s

    def run(
        self,
        index: int,
        variant: Variant,
        config: CollectiveOptions,
        timeout_s: float,
        skip: bool = False,
        log_nccl: bool = False,
    ) -> VariantOutcome | None:
        """One variant on every rank; None when rank 0 said there is no time left for it.

        Rank 0's `skip` and `timeout_s` decide for everyone. `log_nccl`: on NCCL, rank 0's child
        logs INIT, ENV and TUNING (unless the user logs NCCL already), read into `nccl_log`.
        """
        key = f"variants/{variant.sweep}/{index}/"
        if self.launch.rank == 0:
            granted = min(timeout_s, self.remaining_s())
            self.store.set(f"{key}plan", json.dumps({"timeout_s": granted, "skip": skip}))
        plan = json.loads(self._get(f"{key}plan", self.remaining_s()))
        if plan["skip"]:
            return VariantOutcome(variant, [], {}, 0.0, skipped=True)
        timeout_s = plan["timeout_s"]
        if timeout_s <= 0:
            return None
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="nccldoctor-variant-") as tmp:
            result_path = Path(tmp) / "rows.json"
            capture = self._nccl_capture(Path(tmp)) if log_nccl else None
            why, pid = self._run_child(key, variant, config, timeout_s, result_path, capture)
            self.store.set(f"{key}status/{self.launch.rank}", json.dumps({"why": why, "pid": pid}))
            result = json.loads(result_path.read_text()) if result_path.exists() else {}
            nccl_log = read_child_log(capture, pid) if capture else None
        rows = [Row.from_dict(row) for row in result.get("rows", [])]
        outcome = VariantOutcome(variant, rows, {}, 0.0, child=result.get("child", {}), nccl_log=nccl_log)
        if self.launch.rank == 0:
            outcome.failures, outcome.pids = self._collect(key, start + timeout_s + STATUS_GRACE_S)
        else:
            self._get(f"{key}done", self.remaining_s())  # in step: nobody starts the next one early
        outcome.seconds = time.monotonic() - start
        return outcome

    def _nccl_capture(self, directory: Path) -> NcclCapture | None:
        if self.backend != "nccl" or self.launch.rank != 0:
            return None
        capture = plan_capture(os.environ, directory, subsystems=TUNING_SUBSYSTEMS)
        return capture if capture.own_directory else None  # the user's own logging: leave it be

    def _collect(self, key: str, deadline: float) -> tuple[dict[int, str], dict[int, int]]:
        """Rank 0: how every rank's child ended (each parent posts by its child's deadline plus
        a grace) and its pid; then release the others to the next variant."""
        keys = [f"{key}status/{r}" for r in range(self.launch.world_size)]
        left = min(deadline - time.monotonic(), self.remaining_s())
        with contextlib.suppress(RuntimeError, dist.DistError):  # a parent that never posted: named below
            wait_for(self.store, keys, left)
        failures, pids = {}, {}
        for rank, raw in enumerate(get_present(self.store, keys)):  # batched: not 2 trips a rank
            if raw is None:
                failures[rank] = "its parent posted no status"
                continue
            status = json.loads(raw)
            pids[rank] = status["pid"]
            if status["why"]:
                failures[rank] = status["why"]
        self.store.set(f"{key}done", "1")
        return failures, pids

    def _get(self, key: str, timeout_s: float) -> bytes:
        wait_for(self.store, [key], timeout_s)
        return self.store.get(key)

    def _run_child(
        self,
        key: str,
        variant: Variant,
        config: CollectiveOptions,
        timeout_s: float,
        result_path: Path,
        capture: NcclCapture | None,
    ) -> tuple[str | None, int]:
        """Start this rank's child and wait for it: (None when it succeeded, else why not; its pid)."""
        spec = spec_env(
            config,
            timeout_s,
            prefix=f"{self.run_prefix}{key}",
            phases=self.phases,
            backend=self.backend,
            parent_pid=os.getpid(),
            result_path=str(result_path) if self.launch.rank == 0 else None,
            watch=list(variant.watch),
            spawned_at=time.time(),
        )
        env = child_env(os.environ, variant, capture.set_env if capture else {}, spec)
        with tempfile.TemporaryFile("w+") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "nccldoctor.worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                code = child.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                return f"timed out after {timeout_s:.0f} s in {self._child_step(key)}", child.pid
            if code != 0:
                log.seek(0)
                return f"exited with {code}: {_last_line(log.read())}", child.pid
        return None, child.pid

    def _child_step(self, key: str) -> str:
        name = f"{key}step/{self.launch.rank}"
        try:
            return self.store.get(name).decode() if self.store.check([name]) else "start-up"
        except (RuntimeError, dist.DistError):
            return "an unknown step"


def child_env(
    parent: Mapping[str, str], variant: Variant, log_env: Mapping[str, str], spec: Mapping[str, str]
) -> dict[str, str]:
    """The child's environment: the parent's, with the variant's setting over it (a user's own
    NCCL_IB_HCA or NCCL_SOCKET_IFNAME must not win over the one measured), then NCCL's log
    variables and the worker's spec."""
    return {**parent, **variant.env, **log_env, **spec}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def variant_rows(outcome: VariantOutcome, **more: Any) -> list[Row]:
    """The children's rows, labelled with the sweep and setting they were measured under."""
    labels = {"sweep": outcome.variant.sweep, "setting": outcome.variant.setting, **more}
    return [row.labelled(**labels) for row in outcome.rows]
