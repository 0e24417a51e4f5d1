"""Capturing NCCL's own log around init, and judging it per node (real NCCL lines as fixtures).

The fixtures are NCCL INFO logs quoted in public NCCL issues (sources at the top of each file);
no GPU was lent to the session that wrote this, so no locally captured log is among them.
"""

import os
import shutil
from pathlib import Path

import pytest

from nccldoctor.nccl_capture import debug_files, environment, judge_captures, plan_capture, read_capture
from nccldoctor.nccl_log import parse_nccl_log_files
from nccldoctor.net.infiniband import IbPort
from nccldoctor.net.interfaces import Iface
from nccldoctor.net.inventory import NodeNet

FIXTURES = Path(__file__).parent / "fixtures" / "nccl"
NO_IB_SOCKETS = FIXTURES / "socket_noib_2.19_nccl_1267.log"  # NET/IB : No device found; Socket on ens7


def test_unset_nccl_debug_gets_a_private_info_file_per_process(tmp_path):
    capture = plan_capture({}, tmp_path)
    assert capture.set_env == {
        "NCCL_DEBUG": "INFO",
        # recent NCCL logs "Bootstrap : Using" and "set by environment" under BOOTSTRAP and ENV
        "NCCL_DEBUG_SUBSYS": "INIT,NET,BOOTSTRAP,ENV",
        "NCCL_DEBUG_FILE": str(tmp_path / "nccl.%h.%p.log"),
    }
    assert capture.own_directory == tmp_path and capture.note is None


def test_the_users_own_logging_is_read_not_changed_or_reported_missing(tmp_path):
    theirs = plan_capture({"NCCL_DEBUG": "INFO", "NCCL_DEBUG_FILE": "/logs/n.%h.%p"}, tmp_path)
    assert theirs.set_env == {} and theirs.pattern == "/logs/n.%h.%p" and theirs.own_directory is None
    narrow = plan_capture(
        {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_FILE": "f", "NCCL_DEBUG_SUBSYS": "COLL"}, tmp_path
    )
    assert "INIT, NET, BOOTSTRAP and ENV" in narrow.note
    to_stdout = plan_capture({"NCCL_DEBUG": "WARN"}, tmp_path)
    assert to_stdout.pattern is None and "NCCL_DEBUG=WARN" in to_stdout.note


def test_variables_are_restored_after_init(monkeypatch):
    monkeypatch.setenv("NCCL_DEBUG_SUBSYS", "COLL")
    monkeypatch.delenv("NCCL_DEBUG", raising=False)
    with environment({"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": "INIT,NET"}):
        assert os.environ["NCCL_DEBUG"] == "INFO"
    assert "NCCL_DEBUG" not in os.environ and os.environ["NCCL_DEBUG_SUBSYS"] == "COLL"


def test_read_finds_this_processs_file_whatever_nccl_made_of_the_hostname(tmp_path):
    capture = plan_capture({}, tmp_path)
    shutil.copy(NO_IB_SOCKETS, tmp_path / "nccl.instance-8g-96c-4.4242.log")
    shutil.copy(FIXTURES / "ib_2.7_nccl_487.log", tmp_path / "nccl.other.999.log")  # another process
    summary = read_capture(capture, 4242)
    assert summary.transport == "Socket" and summary.socket_ifaces == ["ens7"]
    assert read_capture(capture, 1) is None


def node(rank, ib=True, env=None):
    ports = [IbPort("mlx5_0", 1, "ACTIVE", "200 Gb/sec (4X HDR)", 200.0, "InfiniBand")] if ib else []
    ifaces = [Iface("ens7", (f"10.128.0.{rank + 1}/24",))]
    return NodeNet(rank, f"host{rank}", None, ifaces, env=env or {}, ib_ports=ports)


def published(path):
    return {"summary": parse_nccl_log_files([path]).to_json(), "note": None}


def test_sockets_despite_an_active_ib_port_is_a_fallback_on_that_node_only():
    entries = {0: published(FIXTURES / "ib_2.7_nccl_487.log"), 1: published(NO_IB_SOCKETS)}
    findings, section = judge_captures(entries, {0: 0, 1: 1}, [node(0), node(1)], {0: None, 1: "ens7"})
    (fallback,) = [f for f in findings if f.code == "nccl_transport_fallback"]
    assert fallback.nodes == [1] and "mlx5_0:1" in fallback.message
    assert section["captured"] and section["nodes"]["1"]["transport"] == "Socket"


def test_ib_disabled_on_purpose_or_no_ib_at_all_is_no_fallback():
    entries = {0: published(NO_IB_SOCKETS)}
    disabled = [node(0, env={"NCCL_IB_DISABLE": "1"})]
    assert judge_captures(entries, {0: 0}, disabled, {0: "ens7"})[0] == []
    assert judge_captures(entries, {0: 0}, [node(0, ib=False)], {0: "ens7"})[0] == []


def test_an_interface_other_than_predicted_is_named_with_both():
    findings, _ = judge_captures({0: published(NO_IB_SOCKETS)}, {0: 0}, [node(0, ib=False)], {0: "eth0"})
    (unexpected,) = findings
    assert unexpected.code == "nccl_iface_unexpected" and unexpected.nodes == [0]
    assert unexpected.evidence["predicted"] == "eth0" and unexpected.evidence["actual"] == "ens7"


@pytest.mark.parametrize(
    ("subsys", "left_out"),
    [
        ("INIT,NET", "BOOTSTRAP and ENV"),  # what nccldoctor itself captured before
        ("init,coll", "NET, BOOTSTRAP and ENV"),
        ("^NET", "NET"),  # NCCL's ^: every subsystem but those listed
        ("^net,COLL", "NET"),  # the ^ inverts the whole list
    ],
)
def test_a_users_narrow_subsystems_name_what_is_left_out(tmp_path, subsys, left_out):
    env = {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_FILE": "f", "NCCL_DEBUG_SUBSYS": subsys}
    note = plan_capture(env, tmp_path).note
    assert f"leaves out {left_out} " in note and subsys.upper() in note


@pytest.mark.parametrize("subsys", ["ALL", "INIT,NET,BOOTSTRAP,ENV,COLL", "^COLL", ""])
def test_subsystems_that_cover_the_lines_read_get_no_note(tmp_path, subsys):
    env = {"NCCL_DEBUG": "TRACE", "NCCL_DEBUG_FILE": "f", "NCCL_DEBUG_SUBSYS": subsys}
    assert plan_capture(env, tmp_path).note is None


def test_debug_files_are_this_processs_own_capture_else_the_users_file(tmp_path):
    own = plan_capture({}, tmp_path / "own")
    (tmp_path / "own").mkdir()
    mine, other = tmp_path / "own" / "nccl.node1.42.log", tmp_path / "own" / "nccl.node1.43.log"
    mine.touch()
    other.touch()
    assert debug_files(own.set_env, {}, 42) == [mine]
    user = tmp_path / "user.node1.42.txt"
    user.touch()
    users = {"NCCL_DEBUG": "WARN", "NCCL_DEBUG_FILE": str(tmp_path / "user.%h.%p.txt")}
    assert debug_files({}, users, 42) == [user]  # WARN lines are the ones that name a cause
    assert debug_files({}, {"NCCL_DEBUG_FILE": users["NCCL_DEBUG_FILE"]}, 42) == []  # NCCL logs nothing
    assert debug_files({}, {"NCCL_DEBUG": "INFO"}, 42) == []  # to stdout: the job's output
