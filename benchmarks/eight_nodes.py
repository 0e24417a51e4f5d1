"""Eight emulated nodes, one throttled: does a `--quick` run finish and name that node?

    sudo python benchmarks/eight_nodes.py [--slow-node 5] [--timeout 420]

Needs root (the emulated cluster of tests/cluster: network namespaces as nodes, one NIC each,
1 Gloo rank per node). Node `--slow-node` gets `--cores` of a CPU (in 10 ms periods, as in
tests/cluster/test_stragglers_cluster.py); the run is `nccldoctor.bench --quick`. The default
is 0.1, not the 3-node test's 0.2: eight ranks on 2 cores get a quarter of a core each
anyway, so 0.2 is hardly a throttle (measured: score 0.94, not named); and at 0.05 the node
could not even start its rank (importing torch) before a 420 s deadline. Prints the
run's wall time, rank 0's phase times (the report's `timing` section), the port check's plan,
what was found about the slow node (straggler_node, exclude.txt), and report.json's size; exits
1 when the slow node is not the one named. Not in CI: eight ranks on a 2-core machine take
minutes, not seconds. README "### Scale" quotes its output.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster, cluster_unavailable_reason

NODES = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow-node", type=int, default=5)
    parser.add_argument("--cores", type=float, default=0.1, help="the slow node's CPU quota")
    parser.add_argument("--timeout", type=float, default=420.0, help="the bench's --timeout (s)")
    parser.add_argument("--keep", type=Path, help="copy report.json here")
    args = parser.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"eight_nodes: the emulated cluster is unavailable: {reason}", file=sys.stderr)
        return 2
    bench = ["--quick", "--timeout", str(int(args.timeout))]
    with Cluster(nodes=NODES, nics=("fast0",)) as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.cpu_quota(node=args.slow_node, cores=args.cores, period_us=10_000)
        start = time.monotonic()
        run = cluster.torchrun(1, bench, Path(tmp), timeout=args.timeout + 60)
        wall = time.monotonic() - start
        if args.keep and (Path(tmp) / "report.json").exists():
            shutil.copy(Path(tmp) / "report.json", args.keep)
        return summarize(run, wall, args.slow_node, args.cores)


def summarize(run, wall: float, slow: int, cores: float) -> int:
    print(f"nodes x ranks: {NODES} x 1, --quick, node {slow} at {cores} cores")
    print(f"wall time (torchrun start to last node's exit): {wall:.1f} s")
    print(f"return codes: {run.returncodes}")
    try:
        report = run.report
    except (OSError, ValueError) as exc:
        print(f"no readable report.json: {exc}\n{run.logs[0][-3000:]}")
        return 1
    timing = report.get("timing") or {}
    print("rank 0's phase seconds:", json.dumps(timing, sort_keys=True))
    plan = ((report.get("network") or {}).get("ports") or {}).get("plan")
    print("port check plan:", json.dumps(plan))
    named = sorted(n for f in run.findings("straggler_node") for n in f["nodes"])
    exclude_txt = run.out_dir / "exclude.txt"
    exclude = exclude_txt.read_text().split() if exclude_txt.exists() else []
    hosts = {n["node_rank"]: n["hostname"] for n in report["job"]["nodes"]}
    ranks = (report.get("stragglers") or {}).get("ranks") or []  # none: stopped before health
    scores = {row["rank"]: row["score"] for row in ranks}
    print(f"straggler_node names nodes {named}; exclude.txt: {exclude}")
    for f in report["findings"]:
        print(f"  finding {f['severity']} {f['code']} nodes {f['nodes']}: {f['message'][:150]}")
    print("rank scores:", {r: round(s, 2) for r, s in sorted(scores.items())})
    print(f"report.json: {(run.out_dir / 'report.json').stat().st_size} bytes")
    found = named == [slow] and exclude == [hosts[slow]]
    print("RESULT:", "the slow node is named" if found else "the slow node was NOT the one named")
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
