"""How fast does `nccldoctor explain` read logs, and does its memory stay flat as they grow?

    python benchmarks/explain_speed.py [--size 1G] [--dir /tmp]

Builds a synthetic log of --size from the test excerpts (tests/helpers/explain_excerpts.py):
for each failure excerpt in turn, NCCL's INFO lines of a starting process, ~1,000 training-step
lines, then the excerpt; that unit repeated (about one line in 60 holds a keyword). Then,
each in a fresh process, it explains that log and one a quarter of its size, and prints for
each: MB/s (bytes read / wall time of scan + findings; and per CPU second, which other work on
the machine does not lower) and the process's peak RSS
(resource.getrusage; a fresh process each, so the two peaks compare).
Targets: >= 20 MB/s, and the peak RSS of the large log within 1.5x of the small one's
(streaming: memory must not follow the log's size).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MB_S = 20.0
FLAT_RATIO = 1.5


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def block() -> bytes:
    """The unit the big log repeats: per failure excerpt, NCCL's init lines of a (re)started
    process, ~1,000 training-step lines, then the excerpt."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.explain_excerpts import EXCERPTS, NCCL_INIT, STEPS

    steps = STEPS * (1000 // STEPS.count("\n"))
    return "".join(NCCL_INIT + steps + text for text, *_ in EXCERPTS.values()).encode()


def build(path: Path, size: int) -> None:
    unit = block()
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = unit[: size - written]
            out.write(piece)
            written += len(piece)


def measure(path: str) -> dict[str, float]:
    """In this (fresh) process: explain the log, return MB/s and peak RSS."""
    from nccldoctor.explain.engine import explain
    from nccldoctor.explain.events import scan
    from nccldoctor.explain.reader import expand

    sources = expand([path])
    start, cpu_start = time.perf_counter(), time.process_time()
    findings = explain(scan(sources))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    size = sources[0].stats.bytes
    return {
        "mb": size / 1e6,
        "seconds": seconds,
        "mb_s": size / 1e6 / seconds,
        "mb_cpu_s": size / 1e6 / cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "findings": len(findings),
    }


def run_measure(path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1G", help="the big log's size (K/M/G), default 1G")
    parser.add_argument("--dir", default=None, help="where to write the logs (default: a temp folder)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = {}
        for label, n in (("quarter", size // 4), ("full", size)):
            path = Path(tmp) / f"{label}.log"
            build(path, n)
            results[label] = run_measure(path)
            os.unlink(path)
    for label, r in results.items():
        print(
            f"{label:8s} {r['mb']:9.1f} MB  {r['seconds']:7.2f} s  {r['mb_s']:7.1f} MB/s "
            f"({r['mb_cpu_s']:.1f} per CPU second)  "
            f"peak RSS {r['peak_rss_mb']:6.1f} MB  ({r['findings']} findings)"
        )
    speed_ok = results["full"]["mb_s"] >= TARGET_MB_S
    flat_ok = results["full"]["peak_rss_mb"] <= FLAT_RATIO * results["quarter"]["peak_rss_mb"]
    print(
        f"speed >= {TARGET_MB_S:g} MB/s: {'yes' if speed_ok else 'NO'}; "
        f"memory flat (full <= {FLAT_RATIO:g} x quarter): {'yes' if flat_ok else 'NO'}"
    )
    return 0 if speed_ok and flat_ok else 1


if __name__ == "__main__":
    sys.exit(main())
