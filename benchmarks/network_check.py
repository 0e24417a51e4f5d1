"""What do the network checks cost? Bench wall time vs a bare one-all_reduce torchrun job.

    python benchmarks/network_check.py [--nodes 2,4] [--repeats 3]

Needs root (it builds the emulated cluster of tests/cluster: network namespaces as nodes, one
NIC `fast0` each, so no per-NIC sweep runs; `--ifaces off` is passed as well). For each node
count it runs two jobs, 1 Gloo rank per node, `--repeats` times each, interleaved and taking
turns at going first:

- bare: torchrun on every node running a minimal script (init_process_group("gloo") via
  env://, one all_reduce of one float, destroy_process_group);
- bench: torchrun on every node running `-m nccldoctor.bench --probes all_reduce -b 8 -e 8
  -n 1 -w 0 --ifaces off --health off --out DIR` (the straggler and health phase has its own
  benchmark, benchmarks/stragglers.py); rank 0's report.json gives `network.seconds`, what the
  network checks (interfaces, then ports) cost.

Both are timed from launch until every node's torchrun has exited. One untimed run of each
comes first (imports from a cold page cache). Printed per node count: median, min and max of
each, and the ratios of medians. Target: bench wall <= 2x bare wall, i.e. the network checks
plus everything else nccldoctor adds cost at most one more bare job.
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

TARGET = 2.0  # bench wall / bare wall

BARE = """
import torch, torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
t = torch.ones(1)
dist.all_reduce(t)
assert float(t) == dist.get_world_size()
dist.destroy_process_group()
"""

BENCH_ARGS = ["--probes", "all_reduce", "-b", "8", "-e", "8", "-n", "1", "-w", "0", "--ifaces", "off"]
BENCH_ARGS += ["--health", "off", "--no-ddp"]


def check(name: str, run, problems: list[str]) -> bool:
    """Every node's torchrun exited 0 (and did not time out); record what went wrong if not."""
    if run.timed_out or any(rc != 0 for rc in run.returncodes.values()):
        tail = run.logs[0][-1500:].rstrip()
        problems.append(f"{name}: return codes {run.returncodes}, timed out: {run.timed_out}\n{tail}")
        return False
    return True


def bare_run(cluster: Cluster, script: Path, out: Path, name: str, problems: list[str]) -> float | None:
    run = cluster.torchrun(1, [], out, target=[str(script)])
    return run.seconds if check(name, run, problems) else None


def bench_run(cluster: Cluster, out: Path, name: str, problems: list[str]) -> tuple[float, dict] | None:
    run = cluster.torchrun(1, BENCH_ARGS, out)
    if not check(name, run, problems):
        return None
    try:
        report = run.report
    except (OSError, ValueError) as e:
        problems.append(f"{name}: no readable report.json ({e})")
        return None
    if report.get("verdict") != "pass":
        problems.append(f"{name}: verdict {report.get('verdict')!r}, exit code {report.get('exit_code')}")
    seconds = (report.get("network") or {}).get("seconds")
    if not seconds:
        problems.append(f"{name}: report.json has no network.seconds")
        return None
    return run.seconds, seconds


def measure(nodes: int, repeats: int) -> tuple[dict[str, list[float]], list[str]]:
    samples: dict[str, list[float]] = {"bare": [], "bench": [], "interfaces": [], "ports": [], "network": []}
    problems: list[str] = []
    with Cluster(nodes=nodes, nics=("fast0",)) as cluster, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = work / "bare_allreduce.py"
        script.write_text(BARE)

        def bare(r: int) -> None:
            seconds = bare_run(cluster, script, work / f"bare{r}", f"{nodes} nodes, bare #{r}", problems)
            if seconds is not None and r >= 0:
                samples["bare"].append(seconds)

        def bench(r: int) -> None:
            got = bench_run(cluster, work / f"bench{r}", f"{nodes} nodes, bench #{r}", problems)
            if got is not None and r >= 0:
                wall, seconds = got
                samples["bench"].append(wall)
                samples["interfaces"].append(seconds.get("interfaces", 0.0))
                samples["ports"].append(seconds.get("ports", 0.0))
                samples["network"].append(seconds.get("interfaces", 0.0) + seconds.get("ports", 0.0))

        for r in range(-1, repeats):  # r = -1: the untimed warm-up pair
            first, second = (bare, bench) if r % 2 == 0 else (bench, bare)
            first(r)
            second(r)
    return samples, problems


def spread(values: list[float]) -> str:
    if not values:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    return f"{statistics.median(values):>8.3f} {min(values):>8.3f} {max(values):>8.3f}"


def print_table(nodes: int, repeats: int, samples: dict[str, list[float]], problems: list[str]) -> None:
    print(f"\n{nodes} nodes, 1 Gloo rank each, {repeats} interleaved repeats (+1 untimed warm-up of each)")
    print(f"{'':<26} {'median':>8} {'min':>8} {'max':>8}  {'n':>2}")
    rows = [
        ("bare job wall s", "bare"),
        ("bench wall s", "bench"),
        ("network check s", "network"),
        ("  interfaces s", "interfaces"),
        ("  ports s", "ports"),
    ]
    for label, key in rows:
        print(f"{label:<26} {spread(samples[key])}  {len(samples[key]):>2}")
    if samples["bare"] and samples["bench"]:
        bare = statistics.median(samples["bare"])
        bench = statistics.median(samples["bench"])
        network = statistics.median(samples["network"])
        verdict = "ok" if bench / bare <= TARGET else "MISS"
        print(f"{'network check / bare':<26} {network / bare:>8.3f}")
        print(f"{'bench / bare':<26} {bench / bare:>8.3f}  target <= {TARGET:.2f}: {verdict}")
        print(f"{'bench - bare s':<26} {bench - bare:>8.3f}")
    if problems:
        print(f"{len(problems)} run(s) did not succeed (left out of the table):")
        for problem in problems:
            print(f"  {problem}")
    else:
        print("every node of every run exited 0; every bench verdict: pass")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="2,4", help="node counts (2..4)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each kind per node count")
    args = p.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"network_check: cannot build the emulated cluster: {reason}", file=sys.stderr)
        return 2
    start = time.monotonic()
    print(
        "wall time from launch until every node's torchrun exited: bare one-all_reduce job vs "
        f"`nccldoctor.bench {' '.join(BENCH_ARGS)}`; network check = report's network.seconds "
        "(interfaces + ports)"
    )
    for nodes in (int(n) for n in args.nodes.split(",")):
        samples, problems = measure(nodes, args.repeats)
        print_table(nodes, args.repeats, samples, problems)
    print(f"\ntook {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
