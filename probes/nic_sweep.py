"""Per-NIC sweep, the running part: one variant per interface, each in fresh worker processes.

NCCL reads NCCL_SOCKET_IFNAME and NCCL_IB_HCA once per process and Gloo binds its device when
the process group forms, so a fair comparison runs every interface (or IB port) in new worker
processes (nccldoctor.variants). Which to sweep, through which variable, and what the
measurements mean are decided in nccldoctor.net.nic_sweep.
"""

from __future__ import annotations

import dataclasses

from nccldoctor.config import CollectiveOptions
from nccldoctor.net.nic_sweep import LATENCY_BYTES, exact_value, report_sweep
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.probes.collectives import WORKER_PHASES
from nccldoctor.probes.gpu_device import sweep_blocked
from nccldoctor.variants import Variant, VariantRunner

MIN_ITERS = 10  # timed iterations per NIC at least, so one noisy iteration cannot decide
MIN_WARMUP = 2
MIN_BANDWIDTH_BYTES = 1 << 20  # below this a comparison measures latency and noise, not the NIC


def iface_variants(names: list[str], variable: str) -> list[Variant]:
    """One variant per interface or IB port: `variable` set to exactly that name."""
    return [Variant("ifaces", name, {variable: exact_value(variable, name)}) for name in names]


def sweep_config(config: CollectiveOptions) -> CollectiveOptions:
    """all_reduce at 8 B (latency) and at the run's largest size, at least 1M (bandwidth)."""
    largest = max(config.max_bytes, MIN_BANDWIDTH_BYTES)
    return dataclasses.replace(
        config,
        probes=["all_reduce"],
        expect_busbw={},  # judged on the main run's rows only
        min_bytes=LATENCY_BYTES,
        max_bytes=largest,
        step_factor=max(2, largest // LATENCY_BYTES),
        iters=max(config.iters, MIN_ITERS),
        warmup=max(config.warmup, MIN_WARMUP),
    )


def phases(config) -> list[Phase]:
    return [NicSweepPhase(config)]


class NicSweepPhase(Phase):
    """Each candidate interface the network phase found, in fresh processes (NCCL reads its
    variables once per process)."""

    name = "nic_sweep"

    def __init__(self, config) -> None:
        self.options = sweep_config(config.collectives)

    def variants(self, ctx: PhaseContext) -> list[Variant]:
        network = ctx.published["network"]
        return iface_variants(network.sweep, network.sweep_variable)

    def planned_steps(self, ctx: PhaseContext) -> int:
        return len(self.variants(ctx))

    def run(self, ctx: PhaseContext) -> PhaseResult:
        variants = self.variants(ctx)
        if not variants:
            return PhaseResult()
        blocked = sweep_blocked(ctx, self.name)  # one finding, not every interface failing
        if blocked is not None:
            return PhaseResult(findings=[blocked] if ctx.job.rank == 0 else [])
        runner = VariantRunner.for_phase(ctx, WORKER_PHASES)
        outcomes = []
        for index, variant in enumerate(variants):
            ctx.step(f"per-NIC sweep: {variant.name}")
            outcome = runner.run(index, variant, self.options, runner.budget())
            if outcome is None:
                break
            outcomes.append(outcome)
        if ctx.job.rank != 0:
            return PhaseResult()
        network = ctx.published["network"]
        findings, section = report_sweep(
            variants,
            outcomes,
            network.in_use,
            ctx.job.backend,
            network.nodes,
            ctx.job.nodes_of,
            variable=network.sweep_variable,
            note=network.sweep_note,
        )
        return PhaseResult(findings=findings, sections={"nic_sweep": section})
