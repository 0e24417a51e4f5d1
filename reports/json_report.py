"""report.json: the machine-readable contract (schema_version, verdict, findings, results, job)."""

from __future__ import annotations

import json
from pathlib import Path

from nccldoctor.report import Report

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


def load(path: Path) -> Report:
    """A saved report.json (or the folder holding one) back into a Report."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    return Report.from_dict(json.loads(path.read_text()))
