"""The diagnosis of an incomplete run, from synthetic rank states."""

import pytest

from nccldoctor.findings import INCOMPLETE_CODES
from nccldoctor.incomplete import diagnose_incomplete
from nccldoctor.supervisor import Cause, RankState

LABELS = ["join", "init_process_group", "all_reduce 8 in-place", "all_reduce 32 in-place"]


def label(step: int) -> str:
    return LABELS[step] if 0 <= step < len(LABELS) else f"step #{step}"


def nodes_of(ranks):
    return sorted({r // 2 for r in ranks})  # two ranks per node


def state(rank, step, alive=True, status=None, joined=True):
    return RankState(rank=rank, joined=joined, alive=alive, step=step, status=status)


def status(kind, step, message="m", local=None):
    return {"kind": kind, "message": message, "step": step, "label": label(step), "local": local or {}}


def test_silent_rank_is_crashed_and_survivors_are_not_blamed():
    states = [
        state(0, 3, status=status("signal", 3)),
        state(1, 3, status=status("comm", 3)),
        state(2, 2, alive=False),
        state(3, 3, status=status("signal", 3)),
    ]
    findings = diagnose_incomplete(Cause("signal", "SIGTERM"), states, label, nodes_of)
    assert [(f.code, f.ranks, f.nodes) for f in findings] == [("rank_crashed", [2], [1])]
    assert "all_reduce 8 in-place" in findings[0].message


@pytest.mark.parametrize(("seen", "words"), [("stopped", "state T"), ("disk-sleep", "state D")])
def test_a_silent_rank_its_node_peer_sees_stopped_or_in_d_state_is_frozen_not_crashed(seen, words):
    states = [
        state(0, 3, status=status("peer", 3)),
        state(1, 3, status=status("silent", 3, "rank 2 sent no heartbeat for 15 s")),
        state(2, 2, alive=False),
        state(3, 3, status=status("peer", 3, local={"2": seen})),  # rank 3 shares node 1 with rank 2
    ]
    (finding,) = diagnose_incomplete(Cause("silent", "rank 2 ..."), states, label, nodes_of)
    assert (finding.code, finding.ranks, finding.nodes) == ("rank_frozen", [2], [1])
    assert words in finding.message and "all_reduce 8 in-place" in finding.message
    assert finding.evidence["process_state"] == {2: seen}
    assert finding.code in INCOMPLETE_CODES


def test_a_silent_rank_whose_process_is_gone_is_crashed_and_one_nobody_saw_may_be_anything():
    states = [
        state(0, 3, status=status("peer", 3)),
        state(1, 2, alive=False),  # alone on node 0 but for rank 0, which saw its process gone
        state(2, 3, status=status("peer", 3)),
        state(3, 2, alive=False),  # nobody on node 1 posted: no evidence either way
    ]
    states[0] = state(0, 3, status=status("peer", 3, local={"1": "gone"}))
    findings = diagnose_incomplete(Cause("silent", "rank 1 ..."), states, label, nodes_of)
    assert [(f.code, f.ranks) for f in findings] == [("rank_crashed", [1, 3])]
    assert "frozen or cut off" in findings[0].message  # rank 3's could be any of them
    assert findings[0].evidence["process_state"] == {1: "gone"}


def test_own_exception_is_a_crash_with_its_message():
    states = [
        state(0, 3, status=status("comm", 3)),
        state(1, 2, status=status("error", 2, "ZeroDivisionError: boom")),
    ]
    findings = diagnose_incomplete(Cause("comm", "x"), states, label, nodes_of)
    assert [(f.code, f.ranks) for f in findings] == [("rank_crashed", [1])]
    assert "ZeroDivisionError: boom" in findings[0].message


def test_deadline_names_the_late_rank_only():
    states = [
        state(0, 3, status=status("deadline", 3)),
        state(1, 3, status=status("deadline", 3)),
        state(2, 2, status=status("deadline", 2)),
        state(3, 3, status=status("deadline", 3)),
    ]
    (finding,) = diagnose_incomplete(Cause("deadline", "x"), states, label, nodes_of)
    assert (finding.code, finding.ranks, finding.nodes) == ("rank_timeout", [2], [1])
    assert "all_reduce 32 in-place" in finding.message


def test_deadline_with_nobody_behind_names_everyone_waiting():
    states = [state(r, 3, status=status("deadline", 3)) for r in range(4)]
    (finding,) = diagnose_incomplete(Cause("deadline", "x"), states, label, nodes_of)
    assert finding.code == "rank_timeout" and finding.ranks == [0, 1, 2, 3]
    assert "never completed" in finding.message


def test_rank_that_never_joined_is_a_timeout():
    states = [state(0, 1, status=status("deadline", 1)), state(1, -1, alive=False, joined=False)]
    (finding,) = diagnose_incomplete(Cause("deadline", "x"), states, label, nodes_of)
    assert (finding.code, finding.ranks) == ("rank_timeout", [1])
    assert "never joined" in finding.message


def test_signal_without_crash_is_an_interruption():
    states = [state(r, 3, status=status("signal", 3, "received SIGINT")) for r in range(2)]
    (finding,) = diagnose_incomplete(Cause("signal", "received SIGINT"), states, label, nodes_of)
    assert finding.code == "run_interrupted" and finding.ranks == [0, 1]
    assert finding.message.endswith("in all_reduce 32 in-place")  # where it was stopped


def test_backend_error_without_crash_or_deadline():
    states = [
        state(0, 3, status=status("comm", 3, "DistBackendError: Connection reset")),
        state(1, 3, alive=True),
    ]
    (finding,) = diagnose_incomplete(Cause("comm", "x"), states, label, nodes_of)
    assert finding.code == "collective_error" and finding.ranks == [0]


@pytest.mark.parametrize("kind", ["deadline", "signal", "comm", "timeout"])
def test_only_incomplete_codes_explain_an_incomplete_run(kind):
    states = [state(0, 3, status=status(kind, 3)), state(1, 2, alive=False), state(2, 1, joined=False)]
    findings = diagnose_incomplete(Cause(kind, "x"), states, label, nodes_of)
    assert findings and {f.code for f in findings} <= INCOMPLETE_CODES


def test_a_cause_in_a_rank_s_last_error_comes_first_named_by_the_explain_catalogue():
    oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
    states = [
        state(
            0, 3, status=status("comm", 3, "NCCL error: remote process exited or there was a network error")
        ),
        state(1, 2, status=status("error", 2, oom)),
        state(2, 3, status=status("comm", 3)),
    ]
    findings = diagnose_incomplete(Cause("comm", "x"), states, label, nodes_of)
    assert [(f.code, f.ranks, f.nodes) for f in findings] == [
        ("gpu_error", [1], [0]),
        ("rank_crashed", [1], [0]),
    ]
    assert "explain" in findings[0].evidence["from"]


def test_a_plain_error_adds_nothing_from_the_catalogue():
    states = [state(0, 2, status=status("error", 2, "ZeroDivisionError: boom"))]
    findings = diagnose_incomplete(Cause("error", "x"), states, label, nodes_of)
    assert [f.code for f in findings] == ["rank_crashed"]


# A captured NCCL log of rank 5's process: its INIT line says the rank, its proxy thread (another
# tid of the same pid) later hit an IB error (the WARN line is NVIDIA/nccl#1698's).
CAPTURED_NCCL_LOG = (
    "mycl-g2:353236:353236 [6] NCCL INFO comm 0x558ef922a470 rank 5 nranks 8 cudaDev 6 nvmlDev 6 "
    "busId 30 commId 0x7ef9513a104d9d97 - Init START\n"
    "mycl-g2:353236:353423 [6] transport/net_ib.cc:2244 NCCL WARN NET/IB: Got completion from peer "
    "192.168.3.5<53908> with status=12 opcode=129 len=1048576 vendor err 129 (Recv) localGid "
    "::ffff:192.168.6.3 remoteGids::ffff:192.168.6.5 hca mlx5_10\n"
)


def test_a_cause_in_the_captured_nccl_log_comes_first_with_the_rank_its_process_is(tmp_path):
    log = tmp_path / "nccl.mycl-g2.353236.log"
    log.write_text(CAPTURED_NCCL_LOG)
    states = [state(r, 3, status=status("comm", 3, "NCCL error: remote process exited")) for r in range(8)]
    findings = diagnose_incomplete(Cause("comm", "x"), states, label, nodes_of, nccl_logs=[log])
    assert (findings[0].code, findings[0].ranks, findings[0].nodes) == ("ib_error", [5], [2])
    assert "NCCL log this rank captured" in findings[0].evidence["from"]
    assert findings[1].code == "collective_error"  # the supervisor's own finding follows


def test_no_captured_nccl_log_changes_nothing(tmp_path):
    states = [state(0, 3, status=status("comm", 3))]
    gone = tmp_path / "removed-after-reading.log"
    plain = diagnose_incomplete(Cause("comm", "x"), states, label, nodes_of)
    assert diagnose_incomplete(Cause("comm", "x"), states, label, nodes_of, nccl_logs=[gone]) == plain
