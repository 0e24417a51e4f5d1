"""What does a setting of the settings sweep cost besides its measurement? 2x2 emulated run.

    python benchmarks/settings_sweep.py [--repeats 3] [--max-bytes 1M]

Needs root (it builds the emulated cluster of tests/cluster): 2 nodes with 2 Gloo ranks each,
NICs fast0 and slow0 (unshaped). One bench run sweeps GLOO_SOCKET_IFNAME=fast0,slow0 (with the
defaults: 3 settings x --repeats rounds, each run in fresh processes on all 4 ranks) over
all_reduce from 8 B to --max-bytes. From its report, per setting and run (rank 0's child):

- start-up: spawn until the child's first line runs (the interpreter);
- import + init: torch import and the process group;
- measure: the probes themselves;
- run wall: what the parent spent on the run, from spawn to every rank's status collected
  (so it includes the child's exit and the step of all ranks to the next run).

Baseline, measured in the same invocation (interleaved with the bench, once before it and once
after): a bare 2x2 torchrun job doing one all_reduce (the floor of starting a distributed job
here, including torchrun's own start). Printed: medians, and the ratios per-run overhead (run
wall - measure) / bare job, and overhead / measure.
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
from network_check import BARE  # the same bare job as the network benchmark


def bench_args(repeats: int, max_bytes: str) -> list[str]:
    return [
        "--probes", "all_reduce", "-b", "8", "-e", max_bytes, "-n", "10", "-w", "2",
        "--health", "off", "--ifaces", "off", "--timeout", "600", "--no-ddp",
        "--sweep", "GLOO_SOCKET_IFNAME=fast0,slow0", "--sweep-repeats", str(repeats),
    ]  # fmt: skip


def run_once(cluster: Cluster, args: list[str], out: Path, target: list[str] | None = None):
    run = cluster.torchrun(2, args, out, target=target, timeout=900)
    if run.timed_out or any(rc != 0 for rc in run.returncodes.values()):
        raise SystemExit(f"a run failed: return codes {run.returncodes}\n{run.logs[0][-2000:]}")
    return run


def per_setting(report: dict) -> dict[str, dict[str, list[float]]]:
    table: dict[str, dict[str, list[float]]] = {}
    for setting in report["settings_sweep"]["settings"]:
        samples = table.setdefault(setting["name"], {k: [] for k in ("startup", "init", "measure", "wall")})
        for run in setting["runs"]:
            child = run["child"]
            samples["startup"].append(child["startup_s"])
            samples["init"].append(child["init_s"])
            samples["measure"].append(child["measure_s"])
            samples["wall"].append(run["seconds"])
    return table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="sweep rounds (default 3)")
    p.add_argument("--max-bytes", default="1M", help="largest all_reduce size (default 1M)")
    args = p.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"settings_sweep: cannot build the emulated cluster: {reason}", file=sys.stderr)
        return 2
    start = time.monotonic()
    with Cluster(nodes=2, nics=("fast0", "slow0")) as cluster, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        script = work / "bare_allreduce.py"
        script.write_text(BARE)
        run_once(cluster, [], work / "warm", target=[str(script)])  # untimed: a cold page cache
        bare = [run_once(cluster, [], work / "bare0", target=[str(script)]).seconds]
        bench = run_once(cluster, bench_args(args.repeats, args.max_bytes), work / "bench")
        bare.append(run_once(cluster, [], work / "bare1", target=[str(script)]).seconds)
        table = per_setting(bench.report)
    floor = statistics.median(bare)
    print(
        f"2 nodes x 2 Gloo ranks; sweep GLOO_SOCKET_IFNAME=fast0,slow0 + defaults, {args.repeats} rounds, "
        f"all_reduce 8B-{args.max_bytes}; bench wall {bench.seconds:.1f} s"
    )
    print(f"bare 2x2 torchrun job (one all_reduce), median of {len(bare)}: {floor:.2f} s")
    header = ["setting", "runs", "start-up", "import+init", "measure", "run wall", "overhead"]
    print(f"{header[0]:<28}" + "".join(f"{h:>12}" for h in header[1:]) + f"{'ovh/bare':>10}{'ovh/meas':>10}")
    for name, samples in table.items():
        med = {k: statistics.median(v) for k, v in samples.items()}
        overhead = med["wall"] - med["measure"]
        cells = [med["startup"], med["init"], med["measure"], med["wall"], overhead]
        print(
            f"{name:<28}{len(samples['wall']):>12}"
            + "".join(f"{c:>12.2f}" for c in cells)
            + f"{overhead / floor:>10.2f}{overhead / med['measure']:>10.2f}"
        )
    print("seconds are medians over the runs of each setting (rank 0's child)")
    print(f"took {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
