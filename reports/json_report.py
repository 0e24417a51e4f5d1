"""report.json: the machine-readable contract (schema_version, verdict, findings, results, job)."""

from __future__ import annotations

import json
from pathlib import Path

from nccldoctor.atomic import write_atomically
from nccldoctor.errors import SHAPE_ERRORS
from nccldoctor.report import Report, missing_keys

FILENAME = "report.json"
INDENT_MAX_RANKS = 256
# The JSON type of each core key: a file that has the keys but other types is still not a report.
CORE_TYPES = {
    "job": dict,
    "environment": dict,
    "results": list,
    "findings": list,
    "complete": bool,
    "created": str,
}
JSON_NAMES = {dict: "an object", list: "an array", bool: "a boolean", str: "a string", type(None): "null"}


class JsonSink:
    @classmethod
    def from_options(cls, options: object) -> JsonSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        # Indented for a person up to INDENT_MAX_RANKS; beyond, compact: json's C encoder only
        # runs without indent (3x faster), and the file is a third smaller (1,024 x 8 ranks:
        # benchmarks/report_scale.py).
        indent = 2 if (report.job.get("world_size") or 0) <= INDENT_MAX_RANKS else None
        # Readers never see half a report: the old one or the new one (nccldoctor.atomic).
        text = json.dumps(report.to_dict(), indent=indent, default=str) + "\n"
        write_atomically(out_dir / FILENAME, text)


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
    wrong = _wrong_types(data)
    if wrong:
        raise NotAReport(wrong)
    try:
        return Report.from_dict(data)
    except SHAPE_ERRORS as exc:  # a row of null, a finding without its code
        # A row or finding without a field this version reads: name the field, not the traceback.
        raise NotAReport(f"a result row or finding in it is not one this version reads: {exc}") from None


def _wrong_types(data: dict) -> str | None:
    """'its job is an array, not an object' for the first core key of another type, or None."""
    for key, expected in CORE_TYPES.items():
        if key in data and not isinstance(data[key], expected):
            found = JSON_NAMES.get(type(data[key]), "a number")
            return f"its {key} is {found}, not {JSON_NAMES[expected]}"
    return None
