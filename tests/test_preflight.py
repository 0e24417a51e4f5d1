"""`nccldoctor preflight`: the judgements as pure functions, then the real CLI against loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.fake_nvml import fake_nvml

from nccldoctor.errors import UsageError
from nccldoctor.findings import Severity
from nccldoctor.net.interfaces import Choice, Iface
from nccldoctor.net.inventory import NodeNet
from nccldoctor.preflight import (
    Gpus,
    MasterCheck,
    PreflightConfig,
    backends_to_judge,
    count_visible,
    judge_backend,
    judge_gpus,
    judge_master,
    judge_route,
    resolve,
    route_note,
    run_preflight,
)

LO = Iface("lo", ("127.0.0.1/8",), mtu=65536)
ETH = Iface("eth0", ("10.0.0.2/24",), mtu=1500, speed_mbps=25000)
IB = Iface("ib0", ("10.1.0.2/24",), mtu=2044)
DOCKER = Iface("docker0", ("172.17.0.1/16",), mtu=1500)
SOCKET_VARIABLES = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "NCCL_SOCKET_FAMILY", "NCCL_COMM_ID")


def codes(findings) -> list[tuple[str, str]]:
    return [(f.code, f.severity.value) for f in findings]


# -- GPUs -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("physical", "cvd", "visible"),
    [
        (8, None, 8),  # unset: every GPU
        (8, "", 0),
        (8, "-1", 0),
        (8, "0,1", 2),
        (8, "0,1,-1,2", 2),  # CUDA stops reading at the first invalid entry
        (2, "3", 0),  # out of range
        (2, "1,5,0", 1),
        (4, "GPU-1a2b,GPU-3c4d", 2),  # UUIDs
        (8, "0,0", 1),
        (1, "GPU-a,GPU-b", 1),  # never more than there are
        (0, "0,1", 0),  # no driver: nothing to restrict
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(physical, cvd, visible):
    assert count_visible(physical, cvd) == visible


def test_more_processes_than_gpus_fails_and_names_both_counts():
    (finding,) = judge_gpus(8, Gpus(physical=8, visible=4, cuda_visible_devices="0,1,2,3"))
    assert (finding.code, finding.severity) == ("gpu_count_mismatch", Severity.FAIL)
    assert "--nproc-per-node 8" in finding.message and "only 4 GPU(s)" in finding.message
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3" in finding.message
    assert finding.fix.startswith("torchrun --nproc-per-node 4")


def test_fewer_processes_than_gpus_is_info_about_idle_gpus():
    (finding,) = judge_gpus(2, Gpus(physical=8, visible=8))
    assert (finding.code, finding.severity) == ("gpu_count_mismatch", Severity.INFO)
    assert "2 of 8 GPUs" in finding.message and "idle" in finding.message


@pytest.mark.parametrize(
    ("nproc", "gpus"),
    [
        (8, Gpus(8, 8)),
        (None, Gpus(8, 2)),
        (4, Gpus(0, 0, error="NVML: not found")),
        (4, Gpus(8, 0, (), "-1")),
    ],
)
def test_matching_or_unknown_or_no_gpus_is_no_finding(nproc, gpus):
    assert judge_gpus(nproc, gpus) == []


# -- the master ---------------------------------------------------------------------------------
def master(outcomes: dict[str, str], host: str = "node0", where: str = "remote", iface=ETH) -> MasterCheck:
    return MasterCheck(
        host=host,
        port=29500,
        timeout_s=3.0,
        addresses=list(outcomes),
        outcomes=outcomes,
        where=where,
        source=iface.addresses[0].split("/")[0] if iface else None,
        iface=iface,
    )


def test_refused_is_info_expected_before_launch():
    (finding,) = judge_master(master({"10.0.0.1": "refused"}))
    assert (finding.code, finding.severity) == ("master_not_listening", Severity.INFO)
    assert "node0 (10.0.0.1) port 29500" in finding.message and "expected before launch" in finding.message


def test_timeout_is_unreachable_filtered_with_a_firewall_rule_for_this_node():
    (finding,) = judge_master(master({"10.0.0.1": "timeout"}))
    assert (finding.code, finding.severity) == ("master_unreachable", Severity.FAIL)
    assert "no answer within 3 s" in finding.message and "filtered" in finding.message
    assert "iptables -I INPUT -p tcp -s 10.0.0.2 --dport 29500 -j ACCEPT" in finding.fix


def test_no_route_is_unreachable_with_another_message():
    (finding,) = judge_master(master({"10.9.0.1": "unreachable"}, host="10.9.0.1"))
    assert (finding.code, finding.severity) == ("master_unreachable", Severity.FAIL)
    assert "no route" in finding.message and "filtered" not in finding.message
    assert "ip route get 10.9.0.1" in finding.fix


def test_open_port_is_no_finding_and_the_best_of_several_addresses_counts():
    assert judge_master(master({"::1": "refused", "127.0.0.1": "open"}, host="localhost")) == []
    (finding,) = judge_master(master({"10.0.0.1": "timeout", "10.1.0.1": "refused"}))
    assert finding.code == "master_not_listening" and "10.1.0.1" in finding.message


def test_a_name_lookup_that_hangs_is_cut_off_at_the_timeout(monkeypatch):
    release = threading.Event()

    def dead_dns_server(*args, **kwargs):
        release.wait(30)
        raise socket.gaierror("too late")

    monkeypatch.setattr(socket, "getaddrinfo", dead_dns_server)
    start = time.monotonic()
    try:
        addresses, error = resolve("master.example", 29500, timeout_s=0.3)
    finally:
        release.set()
    assert addresses == [] and error == "no answer within 0.3 s (DNS slow or unreachable)"
    assert time.monotonic() - start < 2


def test_unresolvable_master_says_why():
    check = MasterCheck(host="nope.invalid", port=29500, timeout_s=3.0, error="Name or service not known")
    (finding,) = judge_master(check)
    assert (finding.code, finding.severity) == ("master_unresolvable", Severity.FAIL)
    assert "nope.invalid does not resolve" in finding.message and "Name or service" in finding.message


def test_route_through_a_bridge_to_a_remote_master_is_virtual():
    check = master({"172.17.0.5": "timeout"}, iface=DOCKER)
    (finding,) = judge_route(check, [LO, DOCKER, ETH])
    assert (finding.code, finding.severity) == ("iface_virtual", Severity.FAIL)
    assert "docker0" in finding.message and "eth0" in finding.fix
    (unreachable,) = judge_master(check)  # no firewall rule helps while packets stay on this host
    assert unreachable.fix.startswith("Fix the route first") and "iptables" not in unreachable.fix
    assert judge_route(master({"10.0.0.1": "refused"}), [LO, ETH]) == []
    assert judge_route(master({"127.0.0.1": "refused"}, where="loopback", iface=LO), [LO, ETH]) == []


# -- socket interfaces --------------------------------------------------------------------------
def node(*ifaces: Iface, env=None, hostname_address: str | None = "10.0.0.2") -> NodeNet:
    return NodeNet(None, "host1", hostname_address, list(ifaces), env or {})  # no rank before torchrun


def test_missing_gloo_interface_names_what_exists_and_the_nic_toward_the_master():
    choice = Choice([], "GLOO_SOCKET_IFNAME=ib0")
    (finding,) = judge_backend(node(LO, IB, ETH), "gloo", choice, master({"10.0.0.1": "refused"}))
    assert (finding.code, finding.severity) == ("iface_missing", Severity.FAIL)
    assert "it has lo, ib0, eth0" in finding.message
    assert finding.fix.startswith("export GLOO_SOCKET_IFNAME=eth0")  # the route's NIC, not ib0 first


def test_down_interface_is_named_with_both_fixes():
    down = Iface("eth0", ("10.0.0.2/24",), up=False)
    choice = Choice([down], "NCCL_SOCKET_IFNAME=eth0")
    (finding,) = judge_backend(
        node(LO, down, IB), "nccl", choice, master({"10.0.0.1": "timeout"}, iface=None)
    )
    assert (finding.code, finding.severity) == ("iface_down", Severity.FAIL)
    assert "ip link set eth0 up" in finding.fix and "export NCCL_SOCKET_IFNAME=ib0" in finding.fix


@pytest.mark.parametrize(
    ("where", "expected"),
    [("remote", [("iface_virtual", "fail")]), ("local", [("iface_virtual", "warn")]), ("loopback", [])],
)
def test_gloo_loopback_fallback_depends_on_where_the_master_is(where, expected):
    choice = Choice([LO], "hostname does not resolve: Gloo falls back to loopback")
    findings = judge_backend(
        node(LO, ETH, hostname_address=None), "gloo", choice, master({"a": "refused"}, where=where)
    )
    assert codes(findings) == expected
    if findings:
        assert findings[0].fix == "export GLOO_SOCKET_IFNAME=eth0"


def test_interface_other_than_the_route_is_a_note_not_a_finding():
    check = master({"10.0.0.1": "refused"})
    assert route_note("nccl", Choice([IB], "default: ib*"), check) == (
        "nccl would use ib0, but the route to the master leaves through eth0"
    )
    assert route_note("gloo", Choice([ETH], "hostname -> 10.0.0.2"), check) is None
    assert route_note("nccl", Choice([IB], "default: ib*"), master({"x": "refused"}, where="local")) is None
    assert judge_backend(node(LO, IB, ETH), "nccl", Choice([IB], "default: ib*"), check) == []


def test_the_jobs_backend_is_judged_and_any_other_the_user_configured():
    assert backends_to_judge("gloo", {}) == ["gloo"]
    assert backends_to_judge("nccl", {"GLOO_SOCKET_IFNAME": "eth0"}) == ["nccl", "gloo"]


# -- the whole check, in process ------------------------------------------------------------
@pytest.fixture
def no_socket_variables(monkeypatch):
    for name in SOCKET_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_report_with_gpus_is_nccl_and_follows_the_bench_contract(no_socket_variables):
    config = PreflightConfig(master_addr="127.0.0.1", master_port=free_port(), nproc_per_node=8)
    report = run_preflight(config, gpus=Gpus(physical=8, visible=8, names=("NVIDIA H100",) * 8))
    data = report.to_dict()
    assert codes(report.findings) == [("master_not_listening", "info")]
    assert data["verdict"] == "pass" and data["exit_code"] == 0 and data["results"] == []
    assert (
        data["job"]["backend"] == "nccl" and data["job"]["world_size"] == 8 and data["job"]["nnodes"] is None
    )
    assert data["job"]["nodes"] == [{"node_rank": None, "hostname": socket.gethostname(), "ranks": []}]
    section = data["preflight"]
    assert section["master"]["outcome"] == "refused" and section["master"]["where"] == "loopback"
    assert section["route"]["interface"] == "lo"
    gpu_row = next(r for r in section["checks"] if r["check"] == "GPUs")
    assert gpu_row["result"] == "8 visible x NVIDIA H100" and "backend nccl" in gpu_row["detail"]


def test_more_processes_than_gpus_fails_the_report(no_socket_variables):
    config = PreflightConfig(master_addr="127.0.0.1", master_port=free_port(), nproc_per_node=8)
    report = run_preflight(config, gpus=Gpus(physical=8, visible=2, cuda_visible_devices="0,1"))
    assert ("gpu_count_mismatch", "fail") in codes(report.findings)
    assert report.verdict == "fail" and report.exit_code == 1


def test_a_gpu_nvml_cannot_open_is_not_counted_and_the_others_are(monkeypatch, no_socket_variables):
    # preflight reads GPUs one by one (nccldoctor.gpuhealth): a lost GPU must not hide its neighbours
    h100 = {"nvmlDeviceGetName": "NVIDIA H100 80GB HBM3"}
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([h100, {"lost": True}, h100]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    config = PreflightConfig(master_addr="127.0.0.1", master_port=free_port(), nproc_per_node=2)
    data = run_preflight(config).to_dict()
    gpus = data["preflight"]["gpus"]
    assert (gpus["physical"], gpus["visible"]) == (2, 2) and data["job"]["backend"] == "nccl"
    assert "GPU 1" in gpus["error"] and "GPU is lost" in gpus["error"]
    assert not [f for f in data["findings"] if f["code"] == "gpu_count_mismatch"]
    gpu_row = next(r for r in data["preflight"]["checks"] if r["check"] == "GPUs")
    assert gpu_row["result"] == "2 visible x NVIDIA H100 80GB HBM3"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"master_port": 0}, "--master-port: 0 is not a port (1-65535)"),
        ({"master_port": 70000}, "--master-port: 70000 is not a port"),
        ({"nproc_per_node": 0}, "--nproc-per-node: 0 must be at least 1"),
        ({"timeout_s": -1.0}, "--timeout: -1 must be above 0"),
        ({"master_addr": " "}, "--master-addr is empty"),
    ],
)
def test_config_rejects_bad_values_with_the_value(kwargs, message):
    with pytest.raises(UsageError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        PreflightConfig(**({"master_addr": "h", "master_port": 29500} | kwargs))


# -- the CLI, as a process, against loopback only ------------------------------------------------
def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60):
    clean = {k: v for k, v in os.environ.items() if k not in SOCKET_VARIABLES}
    cmd = [sys.executable, "-m", "nccldoctor.cli", *args]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=clean | (env or {})
    )
    return proc, time.monotonic() - start


def findings_of(out: Path) -> list[dict]:
    return json.loads((out / "report.json").read_text())["findings"]


def test_cli_nothing_listening_on_loopback_is_info_and_exit_0(tmp_path):
    out = tmp_path / "pf"
    proc, seconds = cli(
        "preflight", "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    (finding,) = findings_of(out)
    assert (finding["code"], finding["severity"]) == ("master_not_listening", "info")
    assert "nothing listening yet" in finding["message"]
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["verdict"] == "pass" and report["results"] == []
    assert {"job", "environment", "findings", "preflight"} <= set(report)
    assert (
        "Preflight" in proc.stdout
        and "master_not_listening" in proc.stdout
        and "verdict: PASS" in proc.stdout
    )
    assert (out / "results.csv").exists() and "## Preflight" in (out / "report.md").read_text()
    assert seconds < 15
    shown = subprocess.run(
        [sys.executable, "-m", "nccldoctor.cli", "show", str(out)], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and "Preflight" in shown.stdout and "master port" in shown.stdout
    assert "nccldoctor preflight on" in shown.stdout


def test_cli_listening_master_has_no_master_finding(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = str(listener.getsockname()[1])
        proc, _ = cli(
            "preflight", "--master-addr", "127.0.0.1", "--master-port", port, "--out", str(tmp_path)
        )
    assert proc.returncode == 0, proc.stderr
    assert not [f for f in findings_of(tmp_path) if f["code"].startswith("master_")]
    assert json.loads((tmp_path / "report.json").read_text())["preflight"]["master"]["outcome"] == "open"


def test_cli_unresolvable_master_fails_with_exit_1(tmp_path):
    proc, seconds = cli(
        "preflight", "--master-addr", "no-such-host.invalid", "--master-port", "29500", "--out", str(tmp_path)
    )
    assert proc.returncode == 1, proc.stderr
    (finding,) = [f for f in findings_of(tmp_path) if f["code"] == "master_unresolvable"]
    assert finding["severity"] == "fail" and "no-such-host.invalid does not resolve" in finding["message"]
    assert "verdict: FAIL" in proc.stdout and seconds < 15


def test_cli_missing_gloo_interface_fails_with_an_export_fix(tmp_path):
    port = str(free_port())
    env = {"GLOO_SOCKET_IFNAME": "nosuch0"}
    proc, _ = cli(
        "preflight", "--master-addr", "127.0.0.1", "--master-port", port, "--out", str(tmp_path), env=env
    )
    assert proc.returncode == 1
    (finding,) = [f for f in findings_of(tmp_path) if f["code"] == "iface_missing"]
    assert "GLOO_SOCKET_IFNAME=nosuch0 matches no interface" in finding["message"]
    assert finding["fix"].startswith("export GLOO_SOCKET_IFNAME=")


def test_cli_without_out_writes_a_timestamped_folder_and_counts_no_gpus_here(tmp_path):
    port = str(free_port())
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    proc, _ = cli(
        "preflight",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        port,
        "--nproc-per-node",
        "4",
        cwd=tmp_path,
        env=env,
    )
    (folder,) = (tmp_path / "nccldoctor-out").glob("preflight-*")
    report = json.loads((folder / "report.json").read_text())
    gpus = report["preflight"]["gpus"]
    if gpus["physical"]:
        pytest.skip("this machine has GPUs: the count is real, not asserted here")
    assert proc.returncode == 0 and report["job"]["backend"] == "gloo" and report["job"]["world_size"] == 4
    assert gpus["visible"] == 0 and gpus["cuda_visible_devices"] == "0,1"
    assert not [f for f in report["findings"] if f["code"] == "gpu_count_mismatch"]
    assert "the job will run Gloo on CPU" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--master-addr", "h", "--master-port", "70000"], "--master-port: 70000 is not a port (1-65535)"),
        (
            ["--master-addr", "h", "--master-port", "abc"],
            "argument --master-port: 'abc' is not a whole number",
        ),
        (["--master-port", "29500"], "the following arguments are required: --master-addr"),
        (
            ["--master-addr", "h", "--master-port", "1", "--nproc-per-node", "0"],
            "--nproc-per-node: 0 must be",
        ),
        (
            ["--master-addr", "h", "--master-port", "1", "--timeout", "soon"],
            "'soon' is not a number of seconds",
        ),
        (
            ["--master-addr", "127.0.0.1", "--master-port", "1", "--out", "/proc/nope"],
            "--out: cannot write to",
        ),
    ],
)
def test_cli_bad_usage_is_one_line_and_exit_2(args, message, tmp_path):
    proc, _ = cli("preflight", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("nccldoctor: error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "nccldoctor-out").exists()


def test_preflight_shows_versions_code_and_paths_and_fails_a_missing_path(tmp_path, monkeypatch):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "train.py").write_text("LR = 0.1\n")
    config = PreflightConfig(
        master_addr="127.0.0.1",
        master_port=29999,
        timeout_s=1.0,
        packages=("pytest",),
        code=(str(tmp_path / "repo"),),
        paths=(str(tmp_path / "repo"), str(tmp_path / "dataset")),
    )
    report = run_preflight(config, gpus=Gpus(physical=0, visible=0))
    (missing,) = [f for f in report.findings if f.code == "path_missing"]
    assert str(tmp_path / "dataset") in missing.message and "this node (" in missing.message
    assert missing.nodes == [] and "node 0" not in missing.message
    local = report.sections["preflight"]["consistency"]
    assert local["versions"]["package:pytest"] and local["code"][0]["kind"] == "tree"
    rows = {r["check"]: r["result"] for r in report.sections["preflight"]["checks"]}
    assert rows[f"path {tmp_path / 'dataset'}"] == "missing" and rows[f"path {tmp_path / 'repo'}"].startswith(
        "1 entries"
    )
    assert rows[f"code {tmp_path / 'repo'}"].startswith("digest ") and rows["version: package:pytest"]
