"""One result row: one collective at one size and mode, measured on every rank and gathered.

The collective probes make Rows; the sweeps label copies; the analysis, the tables, results.csv
and report.json's `results[]` read them. A Row crosses process boundaries (a sweep worker's
file, report.json) as `to_dict()` and comes back through `from_dict()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_type_hints

if TYPE_CHECKING:  # a sweep worker makes rows but no frame: its start-up is timed, pandas stays out
    import pandas as pd


# Frozen: a row is a measurement; a sweep labels a copy (labelled) instead of editing it.
@dataclass(frozen=True, kw_only=True)
class Row:
    probe: str  # the collective: "all_reduce", "all_gather", ...
    size_bytes: int  # total buffer size, as nccl-tests reports it, rounded down to what the call moves
    count: int  # elements per call, as nccl-tests prints them for this collective
    dtype: str  # --dtype: "float32", ...
    op: str  # the reduction ("sum", ...); "none" for a collective that does not reduce
    root: int  # the root rank; -1 for a collective without one
    inplace: bool  # in-place (nccl-tests' in-place column group) or out-of-place
    time_us: float  # per call, us: the mean over ranks of each rank's mean over the timed iterations
    algbw_gbps: float  # size_bytes / time_us, in GB/s (1e9 B/s)
    busbw_gbps: float  # algbw times nccl-tests' bus factor for the collective (bandwidth.BUS_FACTORS)
    wrong: int | None  # wrong elements summed over all ranks; None: not checked (-c 0)
    min_time_us: float  # the fastest rank's time per call, us
    max_time_us: float  # the slowest rank's time per call, us
    slowest_rank: int  # the rank that took max_time_us
    wrong_ranks: list[int]  # ranks that saw wrong values
    wrong_sources: list[int]  # ranks whose chunks arrived wrong (only where chunks have known senders)
    iters: int  # timed iterations per rank
    world_size: int  # ranks in the process group that measured it
    setting: str = ""  # "" for the main run; a sweep's label: "defaults", "NCCL_ALGO=Ring", ...
    sweep: str | None = None  # the sweep that measured it ("settings", "ifaces"); None: the main run
    repeat: int | None = None  # the settings sweep's round, from 0 (LOG_ROUND -1: the NCCL log round)

    def to_dict(self) -> dict[str, Any]:
        """What report.json's `results[]` holds: every field in COLUMNS order, except a sweep
        label the row does not carry (the main run's rows have no `sweep` and no `repeat` key,
        as always: readers tell them apart by the key's absence)."""
        data = dataclasses.asdict(self)
        return {name: value for name, value in data.items() if not (name in LABELS and value is None)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        """A row from to_dict(), a worker's file or a saved report.json. Keys this version does
        not know are ignored: the contract only adds keys, and an older nccldoctor should still
        show a newer report. A missing sweep label takes its default (older reports, main-run
        rows); a missing measured field is an error (TypeError)."""
        return cls(**{name: value for name, value in data.items() if name in COLUMNS})

    def labelled(self, **labels: Any) -> Row:
        """A copy carrying a sweep's labels (sweep=, setting=, repeat=); unknown names raise TypeError."""
        return dataclasses.replace(self, **labels)


# The row's fields in order: report.json's keys and results.csv's columns.
COLUMNS = tuple(field.name for field in dataclasses.fields(Row))
LABELS = ("sweep", "repeat")  # present only on a sweep's rows (see Row.to_dict)
# Whole numbers that may be missing (wrong with -c 0, repeat outside the settings sweep): kept
# whole in frames (pandas' nullable Int64), so results.csv writes a round as 2, not 2.0.
_MAYBE_INTS = [name for name, hint in get_type_hints(Row).items() if hint == int | None]


def rows_frame(rows: Iterable[Row]) -> pd.DataFrame:
    """One line per row, one column per field (COLUMNS, in order, also when `rows` is empty);
    a label a row does not carry is missing (NA)."""
    import pandas as pd

    frame = pd.DataFrame([row.to_dict() for row in rows], columns=list(COLUMNS))
    return frame.astype(dict.fromkeys(_MAYBE_INTS, "Int64"))
