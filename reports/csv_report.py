"""results.csv: the long-form result rows, one per probe, size and mode (pandas)."""

from __future__ import annotations

from pathlib import Path
from typing import get_origin, get_type_hints

from nccldoctor.atomic import write_atomically
from nccldoctor.report import Report
from nccldoctor.rows import LABELS, Row, rows_frame

FILENAME = "results.csv"
RANK_LISTS = [name for name, hint in get_type_hints(Row).items() if get_origin(hint) is list]


def _flat(value: object) -> object:
    # Lists of ranks become "1 3" so the CSV stays one value per cell.
    return " ".join(map(str, value)) if isinstance(value, list) else value


class CsvSink:
    @classmethod
    def from_options(cls, options: object) -> CsvSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        # Row's columns, in order; an empty report still gets the header (e.g. after --ddp-only).
        frame = rows_frame(report.results)
        # A sweep label no row carries is no column, as it is no key in report.json: a run
        # without a sweep writes the columns it always wrote.
        frame = frame.drop(columns=[name for name in LABELS if frame[name].isna().all()])
        frame[RANK_LISTS] = frame[RANK_LISTS].map(_flat)
        write_atomically(out_dir / FILENAME, frame.to_csv(index=False))
