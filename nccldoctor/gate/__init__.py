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

from pathlib import Path
from typing import TYPE_CHECKING

from nccldoctor.errors import SHAPE_ERRORS, UsageError
from nccldoctor.gate.exclude import SECTION as EXCLUDE_SECTION
from nccldoctor.gate.exclude import exclusions
from nccldoctor.gate.expectations import Expectations, load

if TYPE_CHECKING:
    from nccldoctor.config import GateOptions
    from nccldoctor.report import Report

# What file_problem read, for review in the same process: the file is read once per run, so the
# rules judged are the ones that were checked before measuring, even if the file changes meanwhile.
_LOADED: dict[Path, Expectations] = {}


def file_problem(options: GateOptions) -> str | None:
    """What is wrong with the gate's files, in one line (None: nothing, or no files)."""
    if options.expect is not None:
        try:
            _LOADED[options.expect] = load(options.expect)
        except UsageError as err:
            return str(err)
    if options.baseline is not None:
        try:
            load_report(options.baseline, "--baseline")
        except UsageError as exc:
            return str(exc)
    return None


def review(report: Report, options: GateOptions) -> Report:
    """The report with the gate's findings and sections added (it is changed in place too)."""
    if options.expect is not None:
        judge_expectations(report, options.expect)
    if options.baseline is not None:
        judge_baseline(report, options)
    # last: the hosts to exclude, from every fail finding, the gate's own included
    report.sections[EXCLUDE_SECTION] = exclusions(report.job, report.findings)
    return report


def judge_expectations(report: Report, path: Path) -> None:
    from nccldoctor.gate.judging import judge_report

    try:
        expectations = _LOADED.get(path) or load(path)
    except UsageError:  # a run stopped before its files were checked: nothing to judge with
        return
    judge_report(expectations, report)


def load_report(path: Path, what: str) -> Report:
    """A saved report (report.json or its folder), or UsageError in one line naming `what`."""
    from nccldoctor.reports.json_report import NotAReport
    from nccldoctor.reports.json_report import load as load_json

    try:
        return load_json(Path(path))
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no report there (a report.json or its folder)") from None
    except NotAReport as exc:
        raise UsageError(f"{what} {path} is not a nccldoctor report.json: {exc}") from None
    except (OSError, ValueError) as exc:  # unreadable, not JSON, not text
        raise UsageError(f"{what} {path} is not a readable nccldoctor report.json: {exc}") from None


def judge_baseline(report: Report, options: GateOptions) -> None:
    """Add the comparison with --baseline: its `regression` findings and the `baseline` section.
    A baseline that went away since the run started is said so, not a crash after the run."""
    from nccldoctor.gate.bar import Bar
    from nccldoctor.gate.baseline import Comparison, compare, findings

    path = str(options.baseline)
    bar = Bar(fail_pct=options.regression_fail, noise_factor=options.regression_noise)
    try:
        comparison = compare(load_report(options.baseline, "--baseline"), report, bar)
    except UsageError as exc:
        comparison = Comparison(False, [str(exc)], [], bar)
    except SHAPE_ERRORS as exc:  # a report.json of the right keys, a section of the wrong shape
        reason = f"--baseline {path} is not a report this version can compare: {type(exc).__name__}: {exc}"
        comparison = Comparison(False, [reason], [], bar)
    report.findings.extend(findings(comparison, path))
    report.sections["baseline"] = comparison.section(path)
