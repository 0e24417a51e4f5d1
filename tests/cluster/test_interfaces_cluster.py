"""Interface diagnosis across emulated nodes: reported before the process group, never hung."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
QUICK = ["-e", "64K", "-n", "3", "-w", "1", "--timeout", "60", "--no-ddp", "--no-html"]


def test_socket_variable_naming_no_interface_is_iface_missing_promptly(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)
    run = cluster.torchrun(1, QUICK, tmp_path, env={"GLOO_SOCKET_IFNAME": "ib0"})
    assert run.returncodes == {0: 1, 1: 1}, run.logs[0][-3000:]
    report = run.report
    missing = run.findings("iface_missing")
    assert sorted(f["nodes"][0] for f in missing) == [0, 1]
    assert "fast0" in missing[0]["message"] and missing[0]["fix"].startswith("export GLOO_SOCKET_IFNAME=")
    assert report["results"] == [] and report["verdict"] == "fail"
    assert run.seconds < 40  # stopped before init_process_group, not at the 60 s deadline


def test_hostname_resolving_to_loopback_on_one_node_is_named(make_cluster, tmp_path):
    cluster = make_cluster(nodes=2)
    node1 = cluster.members[1]
    hosts = Path(f"/etc/netns/{node1.netns}/hosts")
    own = f"{node1.addresses['fast0']} {node1.hostname}"
    hosts.write_text(hosts.read_text().replace(own, f"127.0.1.1 {node1.hostname}"))  # as Debian does
    run = cluster.torchrun(1, QUICK, tmp_path)
    (finding,) = run.findings("iface_virtual")
    assert finding["nodes"] == [1] and "lo" in finding["message"]
    assert run.report["network"]["nodes"][1]["chosen"] == ["lo"]
    assert run.report["network"]["nodes"][0]["chosen"] == ["fast0"]
    assert run.returncodes == {0: 1, 1: 1}
