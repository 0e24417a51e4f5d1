"""results.csv: the long-form result rows, one per probe, size and mode (pandas)."""

from __future__ import annotations

from pathlib import Path

from nccldoctor.report import Report

FILENAME = "results.csv"


def _flat(value: object) -> object:
    # Lists of ranks become "1 3" so the CSV stays one value per cell.
    return " ".join(map(str, value)) if isinstance(value, list) else value


class CsvSink:
    def emit(self, report: Report, out_dir: Path) -> None:
        frame = report.results_frame()
        if not frame.empty:
            frame = frame.map(_flat)
        frame.to_csv(out_dir / FILENAME, index=False)
