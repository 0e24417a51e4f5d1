"""What does the consistency phase cost, and how well does it measure a clock offset?

    python benchmarks/consistency.py [--nodes 2,4] [--repeats 3] [--shift 5]

Needs root (the emulated cluster of tests/cluster: network namespaces as nodes, 1 Gloo rank
each). Per node count, in one cluster, interleaved and taking turns at going first:

- plain: the bench with only an 8-byte all_reduce (no health, no DDP); the report's
  `consistency.seconds` is the phase's wall time with its default checks (versions, ranks and
  GPUs, environment, clocks);
- loaded: the same with `--code` on a 10,000-file tree and `--check-path` on a directory of
  100,000 entries (both on every node). Printed: the medians and the difference per node
  (target: under 2 s beyond the plain run).

Then, when libfaketime is installed, node 1's clock is shifted by --shift seconds (libfaketime
preloaded in its rank, FAKETIME=+Ns, the monotonic clock left alone) and the offset the phase's
clock exchange (nccldoctor.consistency.clocks, run by tests/cluster/clock_exchange.py) measures
is compared with the shift: the error and the stated uncertainty are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster, cluster_unavailable_reason

BENCH = ["-e", "8", "-n", "1", "-w", "0", "--probes", "all_reduce", "--ifaces", "off"]
BENCH += ["--no-ddp", "--health", "off", "--timeout", "120"]
CLOCK_SCRIPT = Path(__file__).resolve().parents[1] / "tests" / "cluster" / "clock_exchange.py"
LIBFAKETIME = [
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
    Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
]


def build_trees(root: Path) -> tuple[Path, Path]:
    code = root / "code"
    for i in range(10_000):
        folder = code / f"pkg{i // 500}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"module{i}.py").write_text(f"VALUE = {i}\n" * 20)
    data = root / "data"
    data.mkdir()
    for i in range(100_000):
        (data / f"item-{i:06d}").touch()
    return code, data


def phase_seconds(run) -> float | None:
    try:
        return run.report["consistency"]["seconds"]
    except (OSError, ValueError, KeyError):
        return None


def measure(nodes: int, repeats: int, code: Path, data: Path, work: Path) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"plain": [], "loaded": []}
    loaded = [*BENCH, "--code", str(code), "--check-path", str(data)]
    with Cluster(nodes=nodes, nics=("fast0",)) as cluster:
        for r in range(-1, repeats):  # one untimed round first: cold caches
            order = [("plain", BENCH), ("loaded", loaded)]
            for name, args in order if r % 2 == 0 else order[::-1]:
                seconds = phase_seconds(cluster.torchrun(1, args, work / f"{nodes}-{name}-{r}", timeout=240))
                if r >= 0 and seconds is not None:
                    samples[name].append(seconds)
    return samples


def clock_error(shift: float, work: Path) -> str:
    """tests/cluster/clock_exchange.py on 2 nodes, node 1's rank under libfaketime (only the
    rank: Debian's libfaketime 0.9.10 breaks torchrun's agent, see that script)."""
    library = next((p for p in LIBFAKETIME if p.exists()), None)
    if library is None:
        return "clock: libfaketime not installed (apt-get install libfaketime): not measured"
    env = {"WORKER_LD_PRELOAD": str(library), "FAKETIME": f"+{shift:g}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    with Cluster(nodes=2, nics=("fast0",)) as cluster:
        run = cluster.torchrun(
            1, [], work / "clock", target=[str(CLOCK_SCRIPT)], node_env={1: env}, timeout=120
        )
    line = next(x for x in run.logs[0].splitlines() if x.startswith("CLOCKS "))
    clock = json.loads(line.removeprefix("CLOCKS "))["offsets"]["1"]
    error = clock["offset_s"] - shift
    return (
        f"clock: node 1 shifted by {shift:g} s, measured {clock['offset_s']:.6f} s "
        f"± {clock['uncertainty_s'] * 1e3:.3f} ms: error {error * 1e3:+.3f} ms"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", default="2,4")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--shift", type=float, default=5.0)
    args = p.parse_args()
    reason = cluster_unavailable_reason()
    if reason:
        print(f"consistency: cannot build the emulated cluster: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        code, data = build_trees(work / "trees")
        for nodes in (int(n) for n in args.nodes.split(",")):
            samples = measure(nodes, args.repeats, code, data, work)
            plain, loaded = (statistics.median(samples[k]) if samples[k] else float("nan") for k in samples)
            print(
                f"{nodes} nodes: consistency phase {plain:.3f} s plain, {loaded:.3f} s with --code "
                f"(10,000 files) and --check-path (100,000 entries): +{loaded - plain:.3f} s per node "
                "(target < 2 s); "
                f"{args.repeats} interleaved runs each"
            )
        print(clock_error(args.shift, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
