"""The expectations section (--expect): every rule of the file, what was measured, and the result,
so a reader sees the passes and what was not checked, not only the failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view
from nccldoctor.units import three_digits


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return three_digits(value)
    return str(value)


def _result(ok: bool | None) -> str:
    return {True: "ok", False: "FAIL", None: "not checked"}[ok]


def rules_table(section: dict[str, Any]) -> pd.DataFrame:
    name = Path(section["file"]).name
    rows = [
        [
            f"{name}:{r['line']}",
            r["key"],
            _number(r["bound"]),
            _number(r["measured"]),
            _result(r["ok"]),
            r.get("note", ""),
        ]
        for r in section["rules"]
    ]
    return pd.DataFrame(rows, columns=["where", "rule", "bound", "measured", "result", "note"])


@view("expectations", order=4)
def draw(report: Report) -> list[Table]:
    section = report.sections["expectations"]
    rules = section["rules"]
    passed = sum(r["ok"] is True for r in rules)
    failed = sum(r["ok"] is False for r in rules)
    title = f"Expectations ({section['file']}"
    title += f": {section['description']})" if section.get("description") else ")"
    title += f": {passed} met, {failed} missed, {len(rules) - passed - failed} not checked"
    return [(title, rules_table(section))]
