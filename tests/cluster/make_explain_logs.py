"""Real failure logs for `nccldoctor explain`, made on the emulated cluster (issue 16).

    sudo python tests/cluster/make_explain_logs.py [CASE ...]   # default: every case

A script, not a test: run as root, it builds a 2-node cluster per case (2 ranks per node: node
0 holds ranks 0-1, node 1 ranks 2-3), runs explain_job.py (Gloo, all-reduce in a loop, 20 s
timeouts) under torchrun on each node, breaks it the way the case says and saves what torchrun
printed on the nodes as tests/fixtures/explain/own/<case>.log: node 0's output, then node 1's,
each after a `==> nodeN.log <==` header (as `tail -n +1 node*.log` prints a log collection).
The case's entry in corpus.json (the cause, the expected root-cause code, ranks, hosts) is
written or replaced with the run's own hostnames (node<i>-<run id>).

Cases (the fault is always on rank 3, node 1):
  rank_killed         SIGKILL rank 3 in the loop
  collective_timeout  SIGSTOP rank 3 in the loop: the others time out in the all-reduce
  peer_unreachable    node 1 drops new inbound TCP on the ephemeral ports (Gloo's listeners)
  iface_missing       GLOO_SOCKET_IFNAME=nosuchnic0 on node 1
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster import Cluster
from cluster.bed import ClusterRun, Launch

JOB = Path(__file__).with_name("explain_job.py")
EXPLAIN = Path(__file__).resolve().parents[1] / "fixtures" / "explain"
MANIFEST = EXPLAIN / "corpus.json"
NPROC = 2
FAULTY_RANK, FAULTY_NODE = 3, 1
LOOP_RUNNING = "step 20"  # rank 0's progress line once the loop has run a while
RUN_TIMEOUT_S = 180
EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range: where Gloo listens


@dataclass
class Outcome:
    run: ClusterRun
    cause: str
    code: str
    ranks: list[int] | None
    hosts: list[str] | None
    suspects: list[int] | None = None  # collective_timeout: the rank the log shows was not waiting


Case = Callable[[Cluster, Path], Outcome]


def launch(cluster: Cluster, out: Path, node_env: dict[int, dict[str, str]] | None = None) -> Launch:
    return cluster.launch(NPROC, [], out, target=[str(JOB)], node_env=node_env)


def faulty_host(cluster: Cluster) -> str:
    return cluster.members[FAULTY_NODE].hostname


def torchrun_root(run: ClusterRun) -> list[int]:
    """The rank node 1's torchrun reports as its first observed failure (which of the node's
    ranks that failed together comes first is timing): where explain attributes rankless lines."""
    block = run.logs[FAULTY_NODE].partition("Root Cause (first observed failure)")[2]
    m = re.search(r"rank\s+: (\d+)", block)
    return [int(m[1])] if m else []


def rank_killed(cluster: Cluster, out: Path) -> Outcome:
    job = launch(cluster, out)
    job.wait_for_output(0, LOOP_RUNNING, 120)
    cluster.signal_rank(FAULTY_RANK, signal.SIGKILL)
    cause = (
        f"Rank {FAULTY_RANK} (node {FAULTY_NODE}) was killed with SIGKILL in the all-reduce loop; the other "
        "ranks lost their Gloo connections to it and torchrun stopped the job."
    )
    return Outcome(job.wait(RUN_TIMEOUT_S), cause, "rank_killed", [FAULTY_RANK], [faulty_host(cluster)])


def collective_timeout(cluster: Cluster, out: Path) -> Outcome:
    job = launch(cluster, out)
    job.wait_for_output(0, LOOP_RUNNING, 120)
    cluster.signal_rank(FAULTY_RANK, signal.SIGSTOP)
    cause = (
        f"Rank {FAULTY_RANK} (node {FAULTY_NODE}) was stopped (SIGSTOP) in the all-reduce loop; the other "
        "ranks timed out in the all-reduce after the 20 s process-group timeout (torchrun then killed "
        "the stopped rank while shutting node 1 down)."
    )
    hosts = sorted(node.hostname for node in cluster.members)  # of the ranks that timed out
    return Outcome(job.wait(RUN_TIMEOUT_S), cause, "collective_timeout", [0, 1, 2], hosts, [FAULTY_RANK])


def peer_unreachable(cluster: Cluster, out: Path) -> Outcome:
    cluster.block_ports(node=FAULTY_NODE, low=EPHEMERAL[0], high=EPHEMERAL[1])  # the master port stays open
    job = launch(cluster, out)
    cause = (
        f"Node {FAULTY_NODE}'s firewall drops new inbound TCP connections to ports "
        f"{EPHEMERAL[0]}-{EPHEMERAL[1]}, where Gloo's ranks listen: the ranks could not connect to "
        "each other (Gloo's connectFullMesh on node 1 timed out; node 0's ranks timed out in the all-reduce)."
    )
    run = job.wait(RUN_TIMEOUT_S)
    return Outcome(run, cause, "peer_unreachable", torchrun_root(run), [faulty_host(cluster)])


def iface_missing(cluster: Cluster, out: Path) -> Outcome:
    job = launch(cluster, out, node_env={FAULTY_NODE: {"GLOO_SOCKET_IFNAME": "nosuchnic0"}})
    cause = (
        f"GLOO_SOCKET_IFNAME=nosuchnic0 was set on node {FAULTY_NODE}, which has no such interface: its "
        "ranks failed in init_process_group and the other node's ranks timed out waiting for them."
    )
    run = job.wait(RUN_TIMEOUT_S)
    return Outcome(run, cause, "iface_missing", torchrun_root(run), [faulty_host(cluster)])


CASES: dict[str, Case] = {
    "rank_killed": rank_killed,
    "collective_timeout": collective_timeout,
    "peer_unreachable": peer_unreachable,
    "iface_missing": iface_missing,
}


def collected(run: ClusterRun) -> str:
    """The nodes' outputs one after another, as `tail -n +1 node*.log` shows a log collection."""
    return "".join(f"==> node{i}.log <==\n{run.logs[i]}\n" for i in sorted(run.logs))


def entry(case: str, outcome: Outcome, today: str) -> dict:
    return {
        "file": f"own/{case}.log",
        "source": f"own run: tests/cluster/make_explain_logs.py {case} ({today})",
        "cause": outcome.cause,
        "expect": {"code": outcome.code, "ranks": outcome.ranks, "hosts": outcome.hosts}
        | ({"suspects": outcome.suspects} if outcome.suspects is not None else {}),
    }


def update_manifest(entries: list[dict]) -> None:
    """Replace (or add) the entries of these files; the manifest stays sorted by file."""
    kept = {e["file"]: e for e in json.loads(MANIFEST.read_text())}
    kept.update({e["file"]: e for e in entries})
    ordered = [kept[name] for name in sorted(kept)]
    MANIFEST.write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n")


def make(case: str, today: str) -> dict:
    with Cluster(nodes=2, nics=("fast0",)) as cluster, tempfile.TemporaryDirectory() as tmp:
        outcome = CASES[case](cluster, Path(tmp))
    if outcome.run.timed_out:
        print(f"{case}: the job outlived {RUN_TIMEOUT_S} s and was killed; the log is as far as it got")
    target = EXPLAIN / "own" / f"{case}.log"
    target.parent.mkdir(exist_ok=True)
    target.write_text(collected(outcome.run))
    print(f"{case}: exit codes {outcome.run.returncodes}, {outcome.run.seconds:.0f} s -> {target}")
    return entry(case, outcome, today)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", metavar="CASE", help=f"of {', '.join(CASES)} (default: all)")
    parser.add_argument("--date", default=date.today().isoformat(), help="the date the sources give")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    update_manifest([make(case, args.date) for case in args.cases or CASES])
    return 0


if __name__ == "__main__":
    sys.exit(main())
