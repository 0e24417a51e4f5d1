"""Building and writing the report of a 1,024-node x 8-rank job: seconds per step, and sizes.

    python benchmarks/report_scale.py [--nodes 1024] [--ranks-per-node 8] [--repeats 3]

The report is synthetic (tests/helpers/scale_report.py: the sections of a real 2-node run
repeated for every node and rank, one slow node, one node dropping inbound ports, host
contention on a quarter of the nodes). Timed, as rank 0 runs them after the last phase:
building the Report, the gate's review (the exclude list), then every sink (json, csv,
markdown, exclude, junit, prometheus, and the terminal into a StringIO). The baseline, in
the same run, is `json.dumps` of the same report's dict: what writing the data costs at
the least. Prints the best of `--repeats` per step, report.json's size against the bare
dump's, and the terminal's line count.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.scale_report import synthetic_report
from rich.console import Console

from nccldoctor.config import GateOptions
from nccldoctor.gate import review
from nccldoctor.reports import SINKS
from nccldoctor.reports.terminal import LOG_WIDTH, TerminalSink


def best_of(repeats: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1024)
    parser.add_argument("--ranks-per-node", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n, r = args.nodes, args.ranks_per_node
    print(f"report of {n} nodes x {r} ranks = {n * r} ranks (best of {args.repeats})")
    seconds: dict[str, float] = {}
    seconds["build (synthetic sections + Report)"] = best_of(args.repeats, lambda: synthetic_report(n, r))
    report = synthetic_report(n, r)
    seconds["gate review (exclude list)"] = best_of(args.repeats, lambda: review(report, GateOptions()))
    bare = json.dumps(report.to_dict(), default=str)
    seconds["baseline: json.dumps(report dict)"] = best_of(
        args.repeats, lambda: json.dumps(report.to_dict(), default=str)
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        terminal = io.StringIO()
        for name, sink_type in SINKS.items():
            if sink_type is TerminalSink:
                sink = TerminalSink(console=Console(file=terminal, width=LOG_WIDTH, highlight=False))
            else:
                sink = sink_type.from_options(None)

            def emit(sink=sink) -> None:
                terminal.seek(0)
                terminal.truncate()
                sink.emit(report, out)

            seconds[f"sink: {name}"] = best_of(args.repeats, emit)
        sizes = {path.name: path.stat().st_size for path in sorted(out.iterdir())}
    sinks_total = sum(v for k, v in seconds.items() if k.startswith("sink"))
    for step, value in seconds.items():
        print(f"  {step:40s} {value:8.3f} s")
    print(f"  {'all sinks':40s} {sinks_total:8.3f} s")
    print(f"report.json: {sizes['report.json'] / 1e6:.2f} MB (bare json.dumps: {len(bare) / 1e6:.2f} MB)")
    print("other files:", ", ".join(f"{k} {v / 1e3:.0f} kB" for k, v in sizes.items() if k != "report.json"))
    lines = terminal.getvalue().splitlines()
    print(f"terminal: {len(lines)} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
