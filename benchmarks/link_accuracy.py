"""Does the bench measure what the wire can carry? Link rate vs iperf3 vs bare loop vs bench.

    python benchmarks/link_accuracy.py [--rates 1000,200] [--size 16M] [--iters 5]

Needs root (it builds the emulated cluster of tests/cluster: two network namespaces joined by
a bridge, the link shaped with tc tbf). For each rate it measures, between the two nodes:
iperf3 (one TCP stream, 3 s), a bare torch.distributed all_reduce loop (one Gloo rank per node,
`--iters` ops of `--size`, busbw), and the bench's all_reduce busbw at the same size; each is
printed as a ratio to the link rate. Targets: bench >= 0.93 of the link, >= 0.97 of the bare loop.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster, cluster_unavailable_reason

from nccldoctor.units import parse_size

BARE = """
import json, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
size, iters, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t = torch.zeros(size // 4)
dist.all_reduce(t)
dist.barrier()
start = time.perf_counter()
for _ in range(iters):
    dist.all_reduce(t)
seconds = (time.perf_counter() - start) / iters
n = dist.get_world_size()
if dist.get_rank() == 0:
    json.dump({"busbw_gbps": size / seconds / 1e9 * 2 * (n - 1) / n}, open(out, "w"))
dist.destroy_process_group()
"""


def iperf3_mbit(cluster: Cluster) -> float:
    server = cluster.spawn(1, ["iperf3", "-s", "-1", "-p", "5201"])
    time.sleep(0.5)
    result = cluster.run_on(0, ["iperf3", "-c", cluster.address(1), "-p", "5201", "-t", "3", "-J"])
    server.wait(timeout=30)
    return json.loads(result.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6


def bare_mbit(cluster: Cluster, size: int, iters: int, work: Path) -> float:
    script, out = work / "bare.py", work / "bare.json"
    script.write_text(BARE)
    run = cluster.torchrun(
        1,
        [str(size), str(iters), str(out)],
        work / "bare",
        target=[str(script)],
        env={"GLOO_SOCKET_IFNAME": "fast0"},
    )
    if run.returncodes != {0: 0, 1: 0}:
        raise RuntimeError(run.logs[0][-2000:])
    return json.loads(out.read_text())["busbw_gbps"] * 8000


def bench_mbit(cluster: Cluster, size: int, iters: int, work: Path) -> float:
    args = ["--probes", "all_reduce", "-b", str(size), "-e", str(size), "-n", str(iters), "-w", "1"]
    args += ["--no-ddp"]
    run = cluster.torchrun(1, args, work / "bench", env={"GLOO_SOCKET_IFNAME": "fast0"})
    if run.returncodes != {0: 0, 1: 0}:
        raise RuntimeError(run.logs[0][-2000:])
    return run.report["results"][-1]["busbw_gbps"] * 8000


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="1000,200", help="link rates in Mbit/s")
    p.add_argument("--size", default="16M")
    p.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"link_accuracy: cannot build the emulated cluster: {reason}", file=sys.stderr)
        return 2
    size = parse_size(args.size)
    print(
        f"all_reduce of {args.size} between 2 emulated nodes (1 Gloo rank each), {args.iters} iters; "
        "ratios to the shaped link rate"
    )
    print(f"{'link Mbit/s':>11} {'iperf3':>8} {'bare loop':>10} {'bench':>8} {'bench/bare':>11}  verdict")
    for rate in (float(r) for r in args.rates.split(",")):
        with Cluster(nodes=2) as cluster, tempfile.TemporaryDirectory() as tmp:
            cluster.shape("fast0", rate)
            iperf = iperf3_mbit(cluster)
            bare = bare_mbit(cluster, size, args.iters, Path(tmp))
            ours = bench_mbit(cluster, size, args.iters, Path(tmp))
        ok = ours / rate >= 0.93 and ours / bare >= 0.97
        print(
            f"{rate:>11.0f} {iperf / rate:>8.3f} {bare / rate:>10.3f} {ours / rate:>8.3f} "
            f"{ours / bare:>11.3f}  {'ok' if ok else 'MISS'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
