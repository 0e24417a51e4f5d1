"""The settings sweep across emulated nodes: it must find the fast NIC that the defaults miss."""

import pytest

# heavy: out of CI's 20 minutes (report.html's browser test came in); the sweep's runs, failures
# and verdicts are tested under torchrun --standalone (tests/test_settings_multiproc.py) and on
# their own (tests/test_settings_sweep.py).
pytestmark = [pytest.mark.cluster, pytest.mark.heavy]


def test_sweeping_the_gloo_interface_recommends_the_fast_one_with_its_export_line(make_cluster, tmp_path):
    # The hostnames resolve to slow0, so by default Gloo runs on the 100 Mbit/s NIC.
    cluster = make_cluster(nodes=2, nics=("fast0", "slow0"), hosts_nic="slow0")
    cluster.shape("slow0", mbit=100)
    args = ["-b", "256K", "-e", "1M", "-n", "3", "-w", "1", "--probes", "all_reduce", "--health", "off"]
    args += ["--no-ddp", "--ifaces", "off", "--sweep", "GLOO_SOCKET_IFNAME=fast0,slow0", "--timeout", "150"]
    args += ["--no-html"]
    run = cluster.torchrun(1, args, tmp_path, timeout=200)
    assert run.returncodes == {0: 0, 1: 0}, run.logs[0][-3000:]
    (finding,) = run.findings("tuning_recommendation")
    assert finding["evidence"]["setting"] == "GLOO_SOCKET_IFNAME=fast0", finding
    assert finding["evidence"]["scope"] == "all sizes" and finding["evidence"]["rounds"] == 3
    assert finding["fix"].startswith("export GLOO_SOCKET_IFNAME=fast0")
    sweep = run.report["settings_sweep"]
    assert sweep["advice"] == "use GLOO_SOCKET_IFNAME=fast0: export GLOO_SOCKET_IFNAME=fast0"
    busbw = {(r["setting"], r["size_bytes"]): r["busbw_median"] for r in sweep["table"]}
    for size in (256 * 1024, 1024 * 1024):
        # The defaults ride slow0: the same speed as pinning it, several times below fast0.
        assert busbw[("defaults", size)] < busbw[("GLOO_SOCKET_IFNAME=fast0", size)] / 3
        assert busbw[("GLOO_SOCKET_IFNAME=slow0", size)] < 100e6 / 8 / 1e9 * 1.05
