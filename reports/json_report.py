"""report.json: the machine-readable contract (schema_version, verdict, findings, results, job)."""

from __future__ import annotations

import json
from pathlib import Path

from nccldoctor.report import Report, missing_keys

FILENAME = "report.json"
INDENT_MAX_RANKS = 256


class JsonSink:
    @classmethod
    def from_options(cls, options: object) -> JsonSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        path = out_dir / FILENAME
        tmp = path.with_suffix(".json.tmp")
        # Indented for a person up to INDENT_MAX_RANKS; beyond, compact: json's C encoder only
        # runs without indent (3x faster), and the file is a third smaller (1,024 x 8 ranks:
        # benchmarks/report_scale.py).
        indent = 2 if (report.job.get("world_size") or 0) <= INDENT_MAX_RANKS else None
        tmp.write_text(json.dumps(report.to_dict(), indent=indent, default=str) + "\n")
        tmp.replace(path)  # readers never see half a report


class NotAReport(ValueError):
    """A JSON file that is not a report.json this version can read; the message says why."""


def load(path: Path) -> Report:
    """A saved report.json (or the folder holding one) back into a Report. A file that is JSON
    but not a report raises NotAReport saying what it lacks, in words."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise NotAReport(f"it holds a JSON {type(data).__name__}, not a report's object")
    lacking = missing_keys(data)
    if lacking:
        raise NotAReport(f"it has no {lacking}")
    try:
        return Report.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        # A row or finding without a field this version reads: name the field, not the traceback.
        raise NotAReport(f"a result row or finding in it is not one this version reads: {exc}") from None
