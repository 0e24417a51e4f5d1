"""report.json: the machine-readable contract (schema_version, verdict, findings, results, job)."""

from __future__ import annotations

import json
from pathlib import Path

from nccldoctor.errors import SHAPE_ERRORS
from nccldoctor.report import Report, missing_keys

FILENAME = "report.json"


class JsonSink:
    @classmethod
    def from_options(cls, options: object) -> JsonSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        path = out_dir / FILENAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
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
    except SHAPE_ERRORS as exc:  # a row of null, a finding without its code
        # A row or finding without a field this version reads: name the field, not the traceback.
        raise NotAReport(f"a result row or finding in it is not one this version reads: {exc}") from None
