"""Faults an unattended gate must survive, on emulated nodes: Ctrl-C (SIGINT) or a scheduler's
SIGTERM to torchrun on one node in the middle of a settings sweep, and a node cut off from the
others in the middle of the collectives. Each must end with a report that says what happened
and where, and leave no process behind on any node."""

import json
import signal
import time

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.heavy]  # run by benchmarks/faults.py
FAST = ["-b", "256K", "-e", "1M", "-n", "3", "-w", "1", "--probes", "all_reduce", "--health", "off"]
FAST += ["--no-ddp", "--ifaces", "off", "--no-html"]


def leftovers(cluster) -> list[str]:
    """What is still running on any node (zombies are gone processes, not leftovers)."""
    alive = []
    for proc in cluster.processes():
        try:
            if proc.status() != "zombie":
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except Exception:  # gone meanwhile
            continue
    return alive


# SIGINT (Ctrl-C) here; SIGTERM (a scheduler) reaches the ranks the same way, through torchrun
# (tests/test_run_command_multiproc.py sends it through `nccldoctor run` mid-run).
@pytest.mark.parametrize("signum", [signal.SIGINT])
def test_a_signal_to_one_nodes_torchrun_mid_sweep_reports_where_and_leaves_no_process(
    make_cluster, tmp_path, signum
):
    cluster = make_cluster(nodes=2, nics=("fast0", "slow0"))
    args = [*FAST, "--sweep", "GLOO_SOCKET_IFNAME=fast0,slow0", "--sweep-repeats", "3", "--timeout", "150"]
    launch = cluster.launch(2, args, tmp_path)
    launch.wait_for_output(0, "settings sweep: ", timeout=120)  # the sweep's workers are running
    time.sleep(1)
    cluster.torchrun_process(1).send_signal(signum)
    run = launch.wait(timeout=120)
    report = run.report
    assert report["complete"] is False and report["exit_code"] == 3
    (finding,) = run.findings("run_interrupted")
    assert signal.Signals(signum).name in finding["message"] and "settings sweep" in finding["message"]
    assert set(finding["nodes"]) == {1}, finding  # the node whose ranks were signalled
    time.sleep(10)
    assert leftovers(cluster) == []  # no rank, sweep worker or sampler left on any node


def test_a_node_cut_off_mid_run_is_named_within_the_silence_and_the_others_exit(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2, nics=("fast0",))
    args = ["-e", "256M", "-f", "2", "--probes", "all_reduce", "--no-ddp", "--ifaces", "off"]
    args += ["--timeout", "150", "--silence", "5"]
    launch = cluster.launch(2, args, tmp_path)
    launch.wait_for_output(0, "] all_reduce", timeout=90)
    time.sleep(1)  # well into the collectives
    cluster.partition(1)
    cut = time.monotonic()
    node0 = launch.procs[0]
    node0.wait(timeout=100)  # node 0 ends its run; node 1 cannot even reach the store
    assert time.monotonic() - cut < 60, "node 0 waited for the deadline"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["complete"] is False and report["exit_code"] == 3
    (finding,) = [f for f in report["findings"] if f["code"] == "rank_crashed"]
    assert finding["nodes"] == [1] and finding["ranks"] == [2, 3], report["findings"]
    assert "cut off" in finding["message"]
