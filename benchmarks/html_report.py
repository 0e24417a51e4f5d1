"""What report.html costs: its size and the time to draw it, against writing report.json.

    python benchmarks/html_report.py [--repeats 3]

For a real report (2 emulated nodes x 2 ranks, every phase: tests/fixtures/reports/two_nodes.json)
and synthetic ones of 64 and 1,024 nodes x 8 ranks (tests/helpers/scale_report.py), rank 0's
two writes are timed in this process: the JSON sink (the bare baseline: the report as it is) and
the HTML sink (the figures drawn with matplotlib, the page assembled). Prints the median of the
repeats, the ratio, the page's size and how much of it is figures. matplotlib's import is timed
apart: a run pays it once.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def timed(action, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    import matplotlib.figure  # noqa: F401  (what the first page of a run pays once)

    print(f"import matplotlib: {time.perf_counter() - start:.2f} s")
    from helpers.scale_report import synthetic_report

    from nccldoctor.config import GateOptions
    from nccldoctor.gate import review
    from nccldoctor.reports.html import HtmlSink
    from nccldoctor.reports.json_report import JsonSink, load

    reports = {
        "2 nodes x 2 (real)": load(ROOT / "tests" / "fixtures" / "reports" / "two_nodes.json"),
        "64 nodes x 8": review(synthetic_report(64, 8), GateOptions()),
        "1,024 nodes x 8": review(synthetic_report(1024, 8), GateOptions()),
    }
    print(f"{'report':<20} {'json s':>8} {'html s':>8} {'html/json':>10} {'page KB':>8} {'figures KB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name, report in reports.items():
            json_s = timed(lambda r=report: JsonSink().emit(r, out), args.repeats)
            html_s = timed(lambda r=report: HtmlSink().emit(r, out), args.repeats)
            page = (out / "report.html").read_text()
            figures = sum(len(svg) for svg in re.findall(r"<svg.*?</svg>", page, re.DOTALL))
            print(
                f"{name:<20} {json_s:>8.3f} {html_s:>8.2f} {html_s / json_s:>10.0f} "
                f"{len(page.encode()) / 1e3:>8.0f} {figures / 1e3:>11.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
