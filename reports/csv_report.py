"""results.csv: the long-form result rows, one per probe, size and mode (pandas)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nccldoctor.report import Report

FILENAME = "results.csv"
RESULT_COLUMNS = [  # the contract's row fields (README, report.json); sweeps add sweep and repeat
    "probe",
    "size_bytes",
    "count",
    "dtype",
    "op",
    "root",
    "inplace",
    "time_us",
    "algbw_gbps",
    "busbw_gbps",
    "wrong",
    "min_time_us",
    "max_time_us",
    "slowest_rank",
    "wrong_ranks",
    "wrong_sources",
    "iters",
    "world_size",
    "setting",
]


def _flat(value: object) -> object:
    # Lists of ranks become "1 3" so the CSV stays one value per cell.
    return " ".join(map(str, value)) if isinstance(value, list) else value


def _gappy_whole_numbers(frame: pd.DataFrame) -> list[str]:
    """Columns of whole numbers with gaps (a sweep's `repeat`, blank on the main run's rows):
    pandas would write them as 2.0."""
    columns = []
    for column in frame.columns:
        values = frame[column].dropna()
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        if 0 < len(values) < len(frame) and whole:
            columns.append(column)
    return columns


class CsvSink:
    @classmethod
    def from_options(cls, options: object) -> CsvSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        frame = pd.DataFrame(report.results, dtype=object)
        if frame.empty:  # a header still, so readers get the columns (e.g. after --ddp-only)
            frame = pd.DataFrame(columns=RESULT_COLUMNS)
        else:
            whole = _gappy_whole_numbers(frame)
            frame = frame.map(_flat)
            frame[whole] = frame[whole].astype("Int64")
        frame.to_csv(out_dir / FILENAME, index=False)
