"""The bench's consistency phase, before the process group: is every node running the same job?

Right after the network check, through the rendezvous store only, so that a node running
another torch, another copy of the code, or with a clock minutes off is named before anything
can hang on it:

1. each node's leader (LOCAL_RANK 0) reads its node's facts (nccldoctor.consistency.facts:
   versions, ranks and GPUs, the variables that change communication; `--code` digests and
   `--check-path` summaries, each bounded in time) and publishes them;
2. on several nodes, each other node's leader measures its clock's offset from rank 0's through
   the store (nccldoctor.consistency.clocks, NTP-style round trips);
3. rank 0 judges all of it against the nodes' majority and decides: go, or stop when a
   mismatch would break the collectives themselves (another torch, NCCL, Python or nccldoctor
   on some node; more ranks than GPUs on NCCL).

Every wait is bounded by the run's deadline.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import torch.distributed as dist

from nccldoctor.config import BenchConfig, ConsistencyOptions
from nccldoctor.consistency import clocks, trees
from nccldoctor.consistency.facts import NodeFacts, collect_facts
from nccldoctor.consistency.judge import judge_env, judge_layout, judge_versions
from nccldoctor.consistency.section import consistency_section
from nccldoctor.findings import Finding, Severity
from nccldoctor.gpuhealth import count_gpus
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.runtime import Job, hostname, wait_for
from nccldoctor.storeio import get_many

CODE_BUDGET_S = 2.0  # per --code tree: a digest is bounded, and says when it stopped early
PATH_BUDGET_S = 1.0  # per --check-path
CLOCK_ROUNDS = 8
# Mismatches after which the collectives themselves would fail or hang: not worth starting them.
STOPPING = {("version_mismatch", c) for c in ("torch", "nccl", "python", "nccldoctor", "cuda")}


def stops_the_run(finding: Finding) -> bool:
    """A mismatch the collectives would hang or crash on: not worth starting them."""
    if finding.severity is not Severity.FAIL:
        return False
    return (
        finding.code == "gpu_count_mismatch" or (finding.code, finding.evidence.get("component")) in STOPPING
    )


def phases(config: BenchConfig) -> list[Phase]:
    return [ConsistencyPhase(config.consistency)]


class ConsistencyPhase(Phase):
    name = "consistency"
    needs_process_group = False

    def __init__(self, options: ConsistencyOptions) -> None:
        self.options = options

    def planned_steps(self, ctx: PhaseContext) -> int:
        return 0  # it runs before the progress bar starts

    def run(self, ctx: PhaseContext) -> PhaseResult:
        check = ConsistencyCheck(ctx.store, ctx.job, self.options, ctx.remaining_s)
        ctx.enter("consistency check")
        findings, section = check.run()
        stop = check.decision() == "stop"
        return PhaseResult(findings=findings, sections={"consistency": section} if section else {}, stop=stop)


class ConsistencyCheck:
    def __init__(self, store: dist.Store, job: Job, options: ConsistencyOptions, remaining_s) -> None:
        self.store = store
        self.job = job
        self.launch = job.launch
        self.options = options
        self.remaining_s = remaining_s

    def run(self) -> tuple[list[Finding], dict[str, Any] | None]:
        """Every rank takes part; rank 0 returns the findings and the section."""
        started = time.monotonic()
        nodes = list(range(self.launch.nnodes))
        if self.launch.local_rank == 0:
            facts = self.node_facts()
            self.store.set(f"consistency/node/{self.launch.node_rank}", json.dumps(facts.to_json()))
        offsets = self.clock_offsets()
        if self.launch.rank != 0:
            return [], None
        facts_by_node = self.read_facts(nodes)
        findings = self.judge(facts_by_node, offsets)
        self.store.set("consistency/decision", "stop" if any(map(stops_the_run, findings)) else "go")
        section = consistency_section(facts_by_node, offsets, findings)
        section["seconds"] = round(time.monotonic() - started, 3)
        return findings, section

    def decision(self) -> str:
        wait_for(self.store, ["consistency/decision"], self.remaining_s())
        return self.store.get("consistency/decision").decode()

    # -- every node's leader ---------------------------------------------------------------
    def node_facts(self) -> NodeFacts:
        facts = collect_facts(
            node=self.launch.node_rank,
            hostname=hostname(),
            ranks=self.launch.local_world_size,
            gpus=count_gpus(),
            packages=self.options.packages,
            environ=os.environ,
        )
        facts.code = [trees.code_digest(path, budget_s=CODE_BUDGET_S) for path in self.options.code]
        facts.paths = [trees.path_summary(path, budget_s=PATH_BUDGET_S) for path in self.options.paths]
        return facts

    def clock_offsets(self) -> dict[int, clocks.ClockOffset]:
        """Rank 0 serves the other nodes' leaders, which measure; rank 0 gets every offset."""
        if self.launch.nnodes == 1:
            return {0: clocks.REFERENCE}
        return clocks.exchange_clocks(self.store, self.launch, self.remaining_s, CLOCK_ROUNDS)

    # -- rank 0 ----------------------------------------------------------------------------
    def read_facts(self, nodes: list[int]) -> dict[int, NodeFacts]:
        keys = [f"consistency/node/{n}" for n in nodes]
        wait_for(self.store, keys, self.remaining_s())
        return {
            n: NodeFacts.from_json(json.loads(raw))
            for n, raw in zip(nodes, get_many(self.store, keys), strict=True)
        }

    def judge(self, facts: dict[int, NodeFacts], offsets: dict[int, clocks.ClockOffset]) -> list[Finding]:
        hostnames = {n: f.hostname for n, f in facts.items()}
        findings = judge_versions(facts) + judge_layout(facts, self.job.backend) + judge_env(facts)
        findings += trees.judge_code({n: f.code for n, f in facts.items()}, hostnames)
        findings += trees.judge_paths({n: f.paths for n, f in facts.items()}, hostnames)
        findings += clocks.judge_clocks(offsets, hostnames, self.options.clock_warn, self.options.clock_fail)
        return findings
