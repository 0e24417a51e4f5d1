"""Section views: how each phase's report section is drawn, as titled tables.

A phase puts its findings in `findings[]` and its details in a top-level section of
report.json (`network`, `stragglers`, `ddp`, ...). The view registered here under that
section's name turns it into tables for every human-readable sink (terminal, Markdown, and
`nccldoctor show`). Every module in this package is loaded, so adding a view is adding a
module with a function decorated `@view("section", order=N)`.

Views live here rather than beside their phase in probes/ because drawing a saved report must
not import torch (`nccldoctor show` and preflight stay fast); they read only the section's JSON.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.registry import Entry, Registry

Table = tuple[str, pd.DataFrame | None]  # (title, frame); None: nothing to show
MAX_ROWS = 20  # rows per table on the terminal and in report.md; report.json keeps them all
ViewFn = Callable[[Report], list[Table]]
View = Entry[ViewFn]

# `@view("section", order=N)` registers `draw(report) -> [(title, frame), ...]` for reports that
# have that section.
view: Registry[ViewFn] = Registry(__name__, __path__)


def views() -> list[View]:
    return view.entries()


def section_tables(report: Report) -> list[tuple[str, pd.DataFrame]]:
    """The tables of every section the report has, titled, in reading order."""
    tables = [table for v in views() if v.section in report.sections for table in v.draw(report)]
    return [(title, frame) for title, frame in tables if frame is not None]


def capped(title: str, frame: pd.DataFrame | None, max_rows: int = MAX_ROWS) -> Table:
    """A table with a row per node or per GPU (1,024 hosts, 8,192 GPUs in a large job) cut to
    its first `max_rows` rows (the view puts the worst first), its title saying how many more."""
    if frame is None or len(frame) <= max_rows:
        return title, frame
    more = len(frame) - max_rows
    return f"{title}: first {max_rows} … and {more:,} more (see report.json)", frame.head(max_rows)
