"""Precision on a healthy cluster: do runs on nothing-wrong nodes ever fail or name a straggler?

    python benchmarks/healthy_runs.py [--runs 10] [--nodes 2] [--nproc 2] [--quick]

Needs root (the emulated cluster of tests/cluster: network namespaces as nodes, one NIC each).
Runs the default bench (every probe, health, DDP benchmark) --runs times on --nodes emulated
nodes x --nproc Gloo ranks with nothing wrong, and counts what the reports say. The emulated
nodes share this machine's cores, as VMs on a busy hypervisor share theirs: 4 ranks on 2 cores
is oversubscribed, and a `host_contention` warning that names the oversubscription is the truth
there. Target: no run with a fail finding, and no straggler_rank or straggler_node finding.

With --quick it runs the gate preset instead (`--quick`), and also checks every run's exit code
is 0 (what a gate acts on). Target for --quick's wall time: at most 2.5x the bare job.

Baseline, measured in the same invocation: a bare torchrun job on the same cluster that inits and
all-reduces one float, run right before each bench run, so each run's wall time is a ratio to a
bare job measured under the same load (the machine's load changes over minutes).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster, cluster_unavailable_reason
from network_check import BARE

STRAGGLER_CODES = ("straggler_rank", "straggler_node")


def run_all(runs: int, nodes: int, nproc: int, bench_args: list[str]) -> list[dict]:
    reports = []
    with Cluster(nodes=nodes, nics=("fast0",)) as cluster, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = work / "bare.py"
        script.write_text(BARE)
        for index in range(runs):
            bare = cluster.torchrun(nproc, [], work / f"bare{index}", target=[str(script)]).seconds
            run = cluster.torchrun(nproc, bench_args, work / f"run{index}", timeout=600)
            try:
                report = run.report
            except (OSError, ValueError) as exc:
                report = {"verdict": "error", "findings": [], "why": f"no report ({exc})"}
            report["_seconds"], report["_bare"] = run.seconds, bare
            report["_exit"] = sorted(set(run.returncodes.values()))
            reports.append(report)
            print(f"run {index + 1}: {summary(report)}", flush=True)
    return reports


def summary(report: dict) -> str:
    found = [
        f"{f['code']}[{f['severity']}] nodes {f['nodes']} ranks {f['ranks']}" for f in report["findings"]
    ]
    seconds, bare = report["_seconds"], report["_bare"]
    head = f"{report['verdict']} (exit {report['_exit']}) in {seconds:.1f} s, bare {bare:.1f} s"
    return f"{head}: " + ("; ".join(found) or "no findings")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--nproc", type=int, default=2, help="ranks per node")
    p.add_argument("--quick", action="store_true", help="run the gate preset (--quick)")
    args = p.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"healthy_runs: cannot build the emulated cluster: {reason}", file=sys.stderr)
        return 2
    reports = run_all(args.runs, args.nodes, args.nproc, ["--quick"] if args.quick else [])
    verdicts = collections.Counter(r["verdict"] for r in reports)
    codes = collections.Counter(f"{f['code']}[{f['severity']}]" for r in reports for f in r["findings"])
    failed = sum(any(f["severity"] == "fail" for f in r["findings"]) for r in reports)
    stragglers = sum(f["code"] in STRAGGLER_CODES for r in reports for f in r["findings"])
    wall = statistics.median(r["_seconds"] for r in reports)
    bare = statistics.median(r["_bare"] for r in reports)
    ratio = statistics.median(r["_seconds"] / r["_bare"] for r in reports)
    nonzero = sum(r["_exit"] != [0] for r in reports)
    kind = "--quick" if args.quick else "default"
    print(f"\n{args.runs} {kind} runs, {args.nodes} emulated nodes x {args.nproc} Gloo ranks, nothing wrong")
    print(f"verdicts: {dict(verdicts)}")
    print(f"findings over all runs: {dict(codes) or 'none'}")
    print(f"runs with a fail finding: {failed}; straggler findings: {stragglers} (target: 0 and 0)")
    print(f"runs whose nodes did not all exit 0: {nonzero} (target: 0)")
    print(f"median bench wall {wall:.1f} s; bare job {bare:.1f} s")
    print(f"median ratio to the bare job run just before it: {ratio:.2f}")
    if args.quick:
        print(f"--quick target: ratio <= 2.5 ({'met' if ratio <= 2.5 else 'NOT met'})")
    return 0 if failed == 0 and stragglers == 0 and (nonzero == 0 or not args.quick) else 1


if __name__ == "__main__":
    sys.exit(main())
