"""The report folder, shared by the bench, preflight and explain (no torch here: they stay fast).

Its contract with readers: at start the last run's report files go (a stale verdict is never
read as this run's); then each file appears whole (nccldoctor.atomic), or not at all when the
disk is full or read-only, and the run says so in one line and exits 3 (write_report).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from nccldoctor.atomic import leftover_temps
from nccldoctor.errors import OutputError, UsageError
from nccldoctor.redact import redact_report

if TYPE_CHECKING:
    from nccldoctor.report import Report, Sink

DEFAULT_OUT_ROOT = Path("nccldoctor-out")
REPORT_FILES = (
    *("report.json", "results.csv", "report.md", "report.html"),
    *("exclude.txt", "junit.xml", "nccldoctor.prom"),
)


def prepare_out_dir(out: Path | None, label: str = "") -> Path:
    """--out DIR itself, or a new ./nccldoctor-out/[label-]<timestamp>/; unwritable -> UsageError."""
    if out is None:
        stamp = label + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = DEFAULT_OUT_ROOT / stamp
        suffix = 1
        while out.exists():
            suffix += 1
            out = DEFAULT_OUT_ROOT / f"{stamp}-{suffix}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in REPORT_FILES:  # a reused --out must never show an older run's verdict
            (out / stale).unlink(missing_ok=True)
            for temp in leftover_temps(out, stale):  # a writer killed mid-write left it
                temp.unlink(missing_ok=True)
        probe = out / ".nccldoctor-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
    return out


def write_report(report: Report, out: Path, sinks: Iterable[Sink]) -> Report:
    """Every sink in order, given the report with its secrets masked (nccldoctor.redact: the one
    door every report leaves by, the bench's complete and partial ones and the commands'), which
    is returned; the first sink that cannot write stops the rest, raised as OutputError.

    Each file sink writes through nccldoctor.atomic, so a file is this run's whole file or
    absent. Stopping at once keeps the terminal (the last sink) from showing a verdict that
    is not on disk, and spares a full disk more attempts."""
    report = redact_report(report)
    for sink in sinks:
        try:
            sink.emit(report, out)
        except OSError as exc:
            raise OutputError(
                f"cannot write the report to {out}: {exc.strerror or exc}; "
                f"the run's verdict ({report.verdict.upper()}) was not delivered"
            ) from None
    return report
