"""The NCCL log phase (NCCL backend only): what NCCL says it did, against what was predicted.

During init_process_group NCCL logs INIT/NET/BOOTSTRAP/ENV lines to a private file per process
(nccldoctor.nccl_capture plans the variables). After the probes every rank publishes its
summary; rank 0 merges them per node and compares transport and interface with the node's
inventory and the network phase's prediction.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from nccldoctor.nccl_capture import (
    NcclCapture,
    judge_captures,
    plan_capture,
    read_capture,
    this_process_files,
)
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.redact import redact_file
from nccldoctor.runtime import wait_for
from nccldoctor.storeio import get_many

RAW_LOG = "nccl-rank0.log"  # rank 0's raw lines, copied beside the report for a human (redacted)
LAZY_INIT_NOTE = (
    "NCCL started at the first collective, not inside init_process_group (torch creates the "
    "communicator eagerly only when NCCL supports splitting, 2.18 and later), after the log "
    "variables set for init were put back: nothing of NCCL's own log could be captured; set "
    "NCCL_DEBUG=INFO and NCCL_DEBUG_FILE yourself to read it"
)


def phases(config) -> list[Phase]:
    return [NcclLogPhase()]


class NcclLogPhase(Phase):
    name = "nccl_log"

    def __init__(self) -> None:
        self.capture: NcclCapture | None = None

    def init_env(self, ctx: PhaseContext) -> Mapping[str, str]:
        if ctx.job.backend != "nccl":
            return {}
        self.capture = plan_capture(os.environ, Path(tempfile.mkdtemp(prefix="nccldoctor-nccl-")))
        return self.capture.set_env

    def planned_steps(self, ctx: PhaseContext) -> int:
        return int(self.capture is not None)

    def run(self, ctx: PhaseContext) -> PhaseResult:
        capture = self.capture
        if capture is None:
            return PhaseResult()
        ctx.step("NCCL log")
        summary = read_capture(capture, os.getpid())
        entry = {"summary": summary.to_json() if summary else None, "note": self._note(ctx, capture)}
        ctx.store.set(f"nccl/{ctx.job.rank}", json.dumps(entry))
        result = self._judge(ctx, capture) if ctx.job.rank == 0 else PhaseResult()
        if capture.own_directory is not None:
            shutil.rmtree(capture.own_directory, ignore_errors=True)
        return result

    @staticmethod
    def _note(ctx: PhaseContext, capture: NcclCapture) -> str | None:
        """Why this rank's capture may hold nothing: the user's settings, or a lazy NCCL init
        that ran after our log variables were put back (the user's own stay set all along)."""
        if capture.set_env and not ctx.job.backend_started_at_init:
            return LAZY_INIT_NOTE
        return capture.note

    def _judge(self, ctx: PhaseContext, capture: NcclCapture) -> PhaseResult:
        keys = [f"nccl/{r}" for r in range(ctx.job.world_size)]
        wait_for(ctx.store, keys, ctx.remaining_s())
        published = {r: json.loads(raw) for r, raw in enumerate(get_many(ctx.store, keys))}
        node_of = {r: ctx.job.node_of(r) for r in published}
        network = ctx.published["network"]
        findings, section = judge_captures(published, node_of, network.nodes, network.predicted)
        for log in this_process_files(capture.pattern or "", os.getpid()) if capture.own_directory else []:
            redact_file(Path(log), ctx.out_dir() / RAW_LOG)  # NCCL echoes variables' values
        return PhaseResult(findings=findings, sections={"nccl": section})
