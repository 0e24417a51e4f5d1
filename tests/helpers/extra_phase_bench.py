"""nccldoctor.bench with one more phase plugged in, the way a new probe module would be: its
class, and one entry in the plan. For tests only (tests/test_phases.py).

usage: extra_phase_bench.py [bench args...]

The extra phase runs after the collectives and before health. It records one progress step,
publishes what it saw of the phases before it, and, on rank 0, a finding and a section.
"""

import sys

from nccldoctor.findings import make_finding
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.signals import EarlySignals


class EchoPhase(Phase):
    name = "echo"

    def planned_steps(self, ctx: PhaseContext) -> int:
        return 1

    def run(self, ctx: PhaseContext) -> PhaseResult:
        ctx.step("echo")
        seen = sorted(ctx.published)  # the phases that ran before this one
        if ctx.job.rank != 0:
            return PhaseResult()
        finding = make_finding("probe_skipped", "echo: a phase plugged in by a test", evidence={"seen": seen})
        section = {"seen": seen, "world_size": ctx.job.world_size, "rows_so_far": len(ctx.rows())}
        return PhaseResult(findings=[finding], sections={"echo": section})


def plan_with_echo(config):
    from nccldoctor.probes import plan

    phases = plan(config)
    after = max(i for i, phase in enumerate(phases) if phase.name in config.collectives.probes)
    return [*phases[: after + 1], EchoPhase(), *phases[after + 1 :]]


def main() -> None:
    early = EarlySignals().install()
    from nccldoctor.reports import make_sinks
    from nccldoctor.runner import run

    sys.exit(run(sys.argv[1:], plan_with_echo, make_sinks, early))


if __name__ == "__main__":
    main()
