"""`nccldoctor preflight` run as a process on an emulated node, against node 0 as the master."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster.bed import MASTER_PORT

pytestmark = pytest.mark.cluster


@dataclass
class Preflight:
    returncode: int
    seconds: float
    report: dict
    output: str

    def findings(self, code: str) -> list[dict]:
        return [f for f in self.report["findings"] if f["code"] == code]

    @property
    def codes(self) -> list[tuple[str, str]]:
        return [(f["code"], f["severity"]) for f in self.report["findings"]]


def preflight(cluster, node: int, master: str, out: Path, env: dict[str, str] | None = None) -> Preflight:
    """`nccldoctor preflight` on `node` (its netns, hostname and /etc/hosts), timed from outside."""
    argv = [sys.executable, "-m", "nccldoctor.cli", "preflight", "--master-addr", master]
    argv += ["--master-port", str(MASTER_PORT), "--out", str(out)]
    log = out.with_suffix(".log")
    start = time.monotonic()
    code = cluster.spawn(node, argv, env=env, log=log).wait(timeout=60)
    seconds = time.monotonic() - start
    output = log.read_text()
    assert (out / "report.json").exists(), output
    return Preflight(code, seconds, json.loads((out / "report.json").read_text()), output)


def test_filtered_master_port_is_unreachable_within_15s(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)
    cluster.block_ports(node=0, low=MASTER_PORT, high=MASTER_PORT)
    run = preflight(cluster, 1, cluster.address(0, "fast0"), tmp_path / "pf")
    assert run.returncode == 1, run.output
    assert run.codes == [("master_unreachable", "fail")]
    (finding,) = run.findings("master_unreachable")
    assert "no answer within 3 s" in finding["message"] and "filtered" in finding["message"]
    assert f"-s {cluster.address(1, 'fast0')} --dport {MASTER_PORT}" in finding["fix"]  # this node's rule
    assert run.report["preflight"]["route"] == {"source": cluster.address(1, "fast0"), "interface": "fast0"}
    assert "verdict: FAIL" in run.output
    assert run.seconds < 15


def test_unfiltered_master_with_nothing_listening_is_info_and_passes(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)
    run = preflight(cluster, 1, cluster.address(0, "fast0"), tmp_path / "pf")
    assert run.returncode == 0, run.output
    assert run.codes == [("master_not_listening", "info")]
    section = run.report["preflight"]
    assert section["master"]["outcome"] == "refused" and section["master"]["where"] == "remote"
    assert section["hostname"] == cluster.members[1].hostname
    assert section["interfaces"]["gloo"]["chosen"] == ["fast0"] and section["backend"] == "gloo"
    assert section["interfaces"]["gloo"]["notes"] == []


def test_master_reached_over_another_nic_than_gloo_uses_is_a_note(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)  # hostnames resolve to fast0: Gloo binds fast0
    run = preflight(cluster, 1, cluster.address(0, "slow0"), tmp_path / "pf")
    assert run.returncode == 0 and run.codes == [("master_not_listening", "info")]
    gloo = run.report["preflight"]["interfaces"]["gloo"]
    assert gloo["notes"] == ["gloo would use fast0, but the route to the master leaves through slow0"]
    assert run.report["preflight"]["route"]["interface"] == "slow0"


def test_gloo_falling_back_to_loopback_with_a_remote_master_fails(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)
    node1 = cluster.members[1]
    hosts = Path(f"/etc/netns/{node1.netns}/hosts")
    own = f"{node1.addresses['fast0']} {node1.hostname}"
    hosts.write_text(hosts.read_text().replace(own, f"127.0.1.1 {node1.hostname}"))  # as Debian does
    run = preflight(cluster, 1, cluster.address(0, "fast0"), tmp_path / "pf")
    assert run.returncode == 1
    (finding,) = run.findings("iface_virtual")
    assert (
        finding["severity"] == "fail" and "gloo would carry traffic between nodes on lo" in finding["message"]
    )
    assert finding["fix"] == "export GLOO_SOCKET_IFNAME=fast0"  # the NIC that reaches the master


def test_configured_interface_that_does_not_exist_is_missing(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)
    run = preflight(
        cluster, 1, cluster.address(0, "slow0"), tmp_path / "pf", env={"GLOO_SOCKET_IFNAME": "ib0"}
    )
    assert run.returncode == 1
    (finding,) = run.findings("iface_missing")
    assert (
        "GLOO_SOCKET_IFNAME=ib0 matches no interface" in finding["message"] and "fast0" in finding["message"]
    )
    assert finding["fix"].startswith("export GLOO_SOCKET_IFNAME=slow0")  # the route's NIC


def test_master_address_on_the_docker_bridge_subnet_is_virtual_and_unreachable(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)
    # 10.213.255.0/24 is every node's decoy docker0: another host's address there is routed
    # into the local bridge, the classic clash of a cluster network with docker's default.
    run = preflight(cluster, 1, "10.213.255.2", tmp_path / "pf")
    assert run.returncode == 1
    assert run.codes == [("iface_virtual", "fail"), ("master_unreachable", "fail")]  # the cause first
    (virtual,) = run.findings("iface_virtual")
    assert "leaves through docker0" in virtual["message"] and "fast0" in virtual["fix"]
    assert run.seconds < 15
