"""`nccldoctor explain` on what torchrun prints around a failure, from the emulated cluster's own
runs (tests/cluster/make_explain_logs.py): lines cut from tests/fixtures/explain/own/*.log."""

from __future__ import annotations

from nccldoctor.explain import blocks
from nccldoctor.explain.engine import explain
from nccldoctor.explain.events import scan
from nccldoctor.explain.reader import Source

AGENT = "site-packages/torch/distributed/elastic/multiprocessing/api.py"


def block(host: str, root: tuple[int, int, str, str], others: list[tuple[int, int, str, str]]) -> str:
    """torchrun's ChildFailedError block; an entry is (rank, local rank, exitcode field, traceback)."""
    lines = ["Failures:"] if others else ["Failures:", "  <NO_OTHER_FAILURES>"]
    for i, entry in enumerate(others, 1):
        lines += [f"[{i}]:", *_entry(host, *entry)]
    lines += ["-" * 60, "Root Cause (first observed failure):", "[0]:", *_entry(host, *root), "=" * 60]
    return "\n".join(lines) + "\n"


def _entry(host: str, rank: int, local: int, exitcode: str, traceback: str) -> list[str]:
    return [
        "  time      : 2026-12-01_15:20:31",
        f"  host      : {host}",
        f"  rank      : {rank} (local_rank: {local})",
        f"  exitcode  : {exitcode}",
        "  error_file: <N/A>",
        f"  traceback : {traceback}",
    ]


EXITED = "To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html"
CLOSED_BY_PEER = (
    "RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed "
    "by peer [10.213.0.2]:22166. This is typically caused by a remote worker crashing."
)
# rank 3 (node 1) was killed; node 0's ranks lost it and exited 1, torchrun on node 1 stopped rank 2
NODE0 = (
    f"[rank0]: {CLOSED_BY_PEER}\n[rank1]: {CLOSED_BY_PEER}\n"
    f"W1201 15:20:31.631000 1 {AGENT}:1028] Sending process 6 closing signal SIGTERM\n"
    f"E1201 15:20:31.663000 1 {AGENT}:1002] failed (exitcode: 1) local_rank: 0 (pid: 5) of binary: python\n"
    + block("node0-x", (0, 0, "1 (pid: 5) ", EXITED), [(1, 1, "1 (pid: 6) ", EXITED)])
)
NODE1 = (
    f"[rank2]: {CLOSED_BY_PEER}\n"
    f"W1201 15:20:30.420000 1 {AGENT}:1028] Sending process 4 closing signal SIGTERM\n"
    f"E1201 15:20:30.458000 1 {AGENT}:1002] failed (exitcode: -9) local_rank: 1 (pid: 5) of binary: python\n"
    + block(
        "node1-x",
        (3, 1, "-9 (pid: 5)  (SIGKILL)", "Signal 9 (SIGKILL) received by PID 5"),
        [(2, 0, "-15 (pid: 4)  (SIGTERM)", "Signal 15 (SIGTERM) received by PID 4")],
    )
)


def findings(*texts: str):
    return explain(scan([Source("job.log", data="".join(texts).encode())]))


def test_the_killed_rank_is_the_root_cause_not_the_ranks_that_lost_it_and_exited():
    root, *rest = findings(NODE0, NODE1)
    assert (root.code, root.ranks, root.evidence["hosts"]) == ("rank_killed", [3], ["node1-x"])
    assert {f.code: f.evidence.get("consequence_of") for f in rest} == {
        "peer_unreachable": "rank_killed",
        "rank_crashed": "rank_killed",  # exit code 1 of ranks whose own error was the lost peer
    }


def test_a_worker_torchrun_stopped_itself_is_no_failure_of_its_own():
    root = findings(NODE1)[0]
    assert root.ranks == [3]  # not rank 2, which torchrun sent SIGTERM after rank 3 died


def test_a_crash_with_no_symptom_of_its_own_stays_a_crash():
    text = "[rank1]: ValueError: bad batch\n" + block("node0-x", (1, 1, "1 (pid: 6) ", EXITED), [])
    root = findings(text)[0]
    assert (root.code, root.ranks) == ("rank_crashed", [1])


def test_each_entry_is_done_at_its_traceback_field_so_the_agents_line_gets_its_own_rank():
    reader = blocks.BlockReader()
    lines = block("node0-x", (0, 0, "1 (pid: 5) ", EXITED), []).splitlines()
    done = [entry for n, line in enumerate(lines) if (entry := reader.feed(n, line))]
    assert [(e.rank, e.pid, e.root) for e in done] == [(0, "5", True)]
    assert reader.close() is None
    # node 1's agent line has node 0's pid too: it must not take node 0's rank
    events = scan([Source("job.log", data=(NODE0 + NODE1).encode())]).events
    agent_lines = {
        e.fields["exitcode"]: (e.who.rank, e.who.host) for e in events if e.name.startswith("elastic")
    }
    assert agent_lines == {"1": (0, "node0-x"), "-9": (3, "node1-x")}


CONNECT_TIMEOUT = (
    "Gloo connectFullMesh failed with [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.h:311] "
    "Connect timeout [none]"
)


def test_gloo_connect_timeout_is_the_cause_on_the_node_whose_torchrun_reports_after_it():
    # node 0's ranks timed out in the all-reduce and node 0's torchrun reported first (15:22:06);
    # node 1's ranks could not connect: their lines name no rank, node 1's report follows them
    node0 = (
        "[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/"
        "unbound_buffer.cc:129] Timed out waiting 20000ms for send operation to complete\n"
        + block("node0-x", (0, 0, "1 (pid: 5) ", EXITED), []).replace("15:20:31", "15:22:06")
    )
    node1 = (
        f"[E1201 15:23:25.094625236 ProcessGroupGloo.cpp:67] {CONNECT_TIMEOUT}\n"
        f"RuntimeError: {CONNECT_TIMEOUT}\n"
        f"E1201 15:23:26.007000 1 {AGENT}:1002] failed (exitcode: 1) local_rank: 0 (pid: 4) "
        "of binary: python\n"
        + block("node1-x", (2, 0, "1 (pid: 4) ", EXITED), [(3, 1, "1 (pid: 5) ", EXITED)])
    )
    root = findings(node0, node1)[0]
    assert (root.code, root.ranks, root.evidence["hosts"]) == ("peer_unreachable", [2], ["node1-x"])
    assert "firewall" in root.message and "ip_local_port_range" in root.fix
