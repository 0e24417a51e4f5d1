"""examples/slurm/nccldoctor-node.sh on two emulated nodes, started as srun starts it.

Each node runs the script with the environment srun gives a task of a 2-node allocation with
--ntasks-per-node=1 (hostnames the emulated ones); `scontrol` is Slurm's, so a stand-in that
expands a plain comma list is on PATH. The nodes must find each other through the c10d
rendezvous on the first host alone, and every node must exit with the report's code.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from cluster.bed import Launch

pytestmark = pytest.mark.cluster
NODE_SCRIPT = Path(__file__).parents[2] / "examples" / "slurm" / "nccldoctor-node.sh"
FLAGS = ["--quick", "--timeout", "120"]  # what healthcheck.sbatch runs
# A bar nobody reaches, on the shortest run that measures it.
FAILING = [*FLAGS, "--probes", "all_reduce", "--health", "off", "--expect-busbw", "1000"]
# Slurm's `scontrol show hostnames LIST`, for the plain comma lists used here.
SCONTROL = '#!/bin/sh\n[ "$1 $2" = "show hostnames" ] || exit 2\necho "$3" | tr , "\\n"\n'


def srun_env(hosts: list[str], node: int, job_id: int, tools: Path, extra: dict[str, str]) -> dict[str, str]:
    """What srun sets in task `node` of a job step over `hosts`, one task per node."""
    n, nodelist = str(len(hosts)), ",".join(hosts)
    env = {
        "SLURM_JOB_ID": str(job_id),
        "SLURM_JOBID": str(job_id),
        "SLURM_JOB_NAME": "nccldoctor-health",
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_NODELIST": nodelist,
        "SLURM_JOB_NUM_NODES": n,
        "SLURM_NNODES": n,
        "SLURM_NODEID": str(node),
        "SLURM_PROCID": str(node),
        "SLURM_LOCALID": "0",
        "SLURM_NTASKS": n,
        "SLURM_NPROCS": n,
        "SLURM_TASKS_PER_NODE": f"1(x{n})",
        "SLURM_STEP_ID": "0",
        "SLURM_STEPID": "0",
        "SLURM_STEP_NODELIST": nodelist,
        "SLURM_STEP_NUM_NODES": n,
        "SLURM_STEP_NUM_TASKS": n,
        "SLURM_STEP_TASKS_PER_NODE": f"1(x{n})",
        "SLURMD_NODENAME": hosts[node],
        "SLURM_TOPOLOGY_ADDR": hosts[node],
        "SLURM_SUBMIT_HOST": hosts[0],
        "SLURM_SUBMIT_DIR": str(NODE_SCRIPT.parent),
        "SLURM_CLUSTER_NAME": "emulated",
        "SLURM_CPUS_ON_NODE": "2",
        # `nccldoctor` from this environment, then the stand-in scontrol
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), str(tools), os.environ["PATH"]]),
    }
    return env | extra


def srun(cluster, tmp_path: Path, job_id: int, flags: list[str], extra: dict[str, str] | None = None):
    """`srun --ntasks-per-node=1 nccldoctor-node.sh FLAGS` across the emulated allocation."""
    tools = tmp_path / "slurm-bin"
    tools.mkdir(exist_ok=True)
    (tools / "scontrol").write_text(SCONTROL)
    (tools / "scontrol").chmod(0o755)
    out = tmp_path / f"job{job_id}"
    out.mkdir()
    hosts = [member.hostname for member in cluster.members]
    procs, logs = {}, {}
    for node in range(cluster.nodes):
        logs[node] = out / f"node{node}.log"
        env = srun_env(hosts, node, job_id, tools, extra or {})
        argv = ["bash", str(NODE_SCRIPT), *flags, "--out", str(out)]
        procs[node] = cluster.spawn(node, argv, env=env, log=logs[node])
    return Launch(procs=procs, logs=logs, out_dir=out, start=time.monotonic()).wait(timeout=240), hosts


def test_each_node_meets_the_first_host_and_exits_with_the_reports_code(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2, nics=("fast0",))

    # A healthy allocation without GPUs: nccldoctor runs 2 CPU ranks per node.
    run, hosts = srun(cluster, tmp_path, 4711, FLAGS)
    assert not run.timed_out, run.logs
    report = run.report
    job = report["job"]
    assert (job["nnodes"], job["world_size"]) == (2, 4), run.logs
    assert sorted(node["hostname"] for node in job["nodes"]) == hosts
    assert report["exit_code"] == 0, [(f["code"], f["message"]) for f in report["findings"]]
    assert run.returncodes == {0: 0, 1: 0}, run.logs
    assert f"rendezvous at {hosts[0]}:30111" in run.logs[1]  # 29400 + job id mod 1000

    # A bar nobody reaches, on one GPU's worth of ranks per node (SLURM_GPUS_ON_NODE=1):
    # the report is a fail, and each node says 1 where torchrun would have said 1 for anything.
    run, _ = srun(cluster, tmp_path, 4712, FAILING, {"SLURM_GPUS_ON_NODE": "1"})
    report = run.report
    assert report["job"]["world_size"] == 2, run.logs
    assert report["exit_code"] == 1 and "low_bandwidth" in {f["code"] for f in report["findings"]}
    assert run.returncodes == {0: 1, 1: 1}, run.logs
