"""The gate: what turns a finished report into action for a scheduler, a CI job or a dashboard.

Two hooks, both on rank 0, both pure functions of the report and the gate's options:

- `file_problem(options)`: before anything is measured, the one-line problem with an
  --expect or --baseline file (the bench then exits 2 on every rank within seconds).
- `review(report, options)`: after the run, the findings of the cluster's own bar
  (--expect), of the comparison with a known-good run (--baseline), and last the hosts to
  exclude from the next job (from every fail finding, including those two).

`nccldoctor compare` and `nccldoctor show` use the same functions on saved reports, so a
report judged offline reads as it would have in the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nccldoctor.gate.exclude import SECTION as EXCLUDE_SECTION
from nccldoctor.gate.exclude import exclusions

if TYPE_CHECKING:
    from nccldoctor.config import GateOptions
    from nccldoctor.report import Report


def file_problem(options: GateOptions) -> str | None:
    """What is wrong with the gate's files, in one line (None: nothing, or no files)."""
    return None


def review(report: Report, options: GateOptions) -> Report:
    """The report with the gate's findings and sections added (it is changed in place too)."""
    # -- the gate's own findings go here, in this order: --expect, then --baseline. --
    # -- last: the hosts to exclude, from every fail finding, the gate's own included --
    report.sections[EXCLUDE_SECTION] = exclusions(report.job, report.findings)
    return report
