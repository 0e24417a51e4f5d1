"""What do the straggler and health probes cost, and by how much do they catch a slow node?

    python benchmarks/stragglers.py [--nodes 2,3,4] [--repeats 3]

Needs root (the emulated cluster of tests/cluster: network namespaces as nodes, one NIC each,
1 Gloo rank per node). Per node count, in one cluster:

- bare: a minimal torchrun job (init_process_group, one all_reduce of one float) - the baseline;
- probes: `nccldoctor.bench` with only the smallest all_reduce and the straggler and health
  phase on; the report's `stragglers.seconds` is that phase's time (compute and step probes,
  ring links, node pairs, host and GPU health), printed next to the bare job and as a ratio;
- throttled: node 1 then gets a CPU quota of 0.2 cores and the bench runs once more. The
  detection margin is node 1's score against the median score of the healthy ranks, and
  against the 0.75 fail threshold.

Bare and probe runs are interleaved and take turns at going first; one untimed run of each
comes first (cold page cache).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster, cluster_unavailable_reason
from network_check import BARE, spread  # the same bare job and summary as the network benchmark

BENCH_ARGS = ["--probes", "all_reduce", "-b", "8", "-e", "8", "-n", "1", "-w", "0", "--ifaces", "off"]
BENCH_ARGS += ["--no-ddp"]
QUOTA_CORES = 0.2
FAIL_SCORE = 0.75


def stragglers_section(run, problems: list[str], name: str) -> dict | None:
    try:
        section = run.report.get("stragglers")
    except (OSError, ValueError) as exc:
        section = None
        problems.append(f"{name}: no readable report.json ({exc})")
    if section is None:
        problems.append(f"{name}: no stragglers section; return codes {run.returncodes}")
    return section


def measure(nodes: int, repeats: int) -> tuple[dict[str, list[float]], dict[str, float], list[str]]:
    samples: dict[str, list[float]] = {"bare": [], "probes": [], "bench": []}
    problems: list[str] = []
    with Cluster(nodes=nodes, nics=("fast0",)) as cluster, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = work / "bare.py"
        script.write_text(BARE)

        def bare(r: int) -> None:
            run = cluster.torchrun(1, [], work / f"bare{r}", target=[str(script)])
            if set(run.returncodes.values()) != {0}:
                problems.append(f"bare #{r}: return codes {run.returncodes}")
            elif r >= 0:
                samples["bare"].append(run.seconds)

        def probes(r: int) -> None:
            run = cluster.torchrun(1, BENCH_ARGS, work / f"bench{r}")
            section = stragglers_section(run, problems, f"bench #{r}")
            if section is not None and r >= 0:
                samples["probes"].append(section["seconds"])
                samples["bench"].append(run.seconds)

        for r in range(-1, repeats):
            first, second = (bare, probes) if r % 2 == 0 else (probes, bare)
            first(r)
            second(r)
        cluster.cpu_quota(node=1, cores=QUOTA_CORES)
        run = cluster.torchrun(1, BENCH_ARGS, work / "throttled", timeout=300)
        section = stragglers_section(run, problems, "throttled")
        margin = {}
        if section is not None:
            scores = {row["rank"]: row["score"] for row in section["ranks"]}  # rank = node here
            margin = {
                "throttled": scores[1],
                "healthy_median": statistics.median(s for rank, s in scores.items() if rank != 1),
                "probes_s": section["seconds"],
                "named": [f["nodes"] for f in run.report["findings"] if f["code"] == "straggler_node"],
            }
    return samples, margin, problems


def report(nodes: int, repeats: int, samples, margin, problems) -> None:
    print(f"\n{nodes} nodes, 1 Gloo rank each, {repeats} interleaved repeats (+1 untimed warm-up)")
    print(f"{'':<34} {'median':>8} {'min':>8} {'max':>8}")
    print(f"{'bare job wall s':<34} {spread(samples['bare'])}")
    print(f"{'straggler + health probes s':<34} {spread(samples['probes'])}")
    print(f"{'whole bench wall s':<34} {spread(samples['bench'])}")
    if samples["bare"] and samples["probes"]:
        ratio = statistics.median(samples["probes"]) / statistics.median(samples["bare"])
        print(f"{'probes / bare job':<34} {ratio:>8.3f}")
    if margin:
        print(
            f"node 1 at {QUOTA_CORES} cores: score {margin['throttled']:.3f}, healthy median "
            f"{margin['healthy_median']:.3f}, ratio {margin['throttled'] / margin['healthy_median']:.3f}; "
            f"{FAIL_SCORE / margin['throttled']:.1f}x below the {FAIL_SCORE} fail score; "
            f"probes took {margin['probes_s']:.1f} s; straggler_node named {margin['named']}"
        )
    for problem in problems:
        print(f"  problem: {problem}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="2,3,4", help="node counts (2..4)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"stragglers: cannot build the emulated cluster: {reason}", file=sys.stderr)
        return 2
    start = time.monotonic()
    for nodes in (int(n) for n in args.nodes.split(",")):
        report(nodes, args.repeats, *measure(nodes, args.repeats))
    print(f"\ntook {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
