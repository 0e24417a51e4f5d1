"""`nccldoctor preflight`'s section: one row per check of this node, before torchrun."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, view


@view("preflight", order=0)
def draw(report: Report) -> list[Table]:
    checks = report.sections["preflight"]["checks"]
    return [("Preflight", pd.DataFrame(checks, columns=["check", "result", "detail"]))]
