"""IB/RoCE port inventory from a fake /sys/class/infiniband tree (formats of the kernel's sysfs.c)."""

import json

import pytest

from nccldoctor.net.infiniband import IbPort, ib_off_on_purpose, ib_ports


def make_port(root, device, port, **files):
    port_dir = root / device / "ports" / str(port)
    port_dir.mkdir(parents=True)
    for name, value in files.items():
        (port_dir / name).write_text(value + "\n")


def fake_sysfs(tmp_path):
    root = tmp_path / "infiniband"
    make_port(
        root, "mlx5_0", 1, state="4: ACTIVE", phys_state="5: LinkUp",
        rate="200 Gb/sec (4X HDR)", link_layer="InfiniBand",
    )  # fmt: skip
    (root / "mlx5_0" / "device" / "net" / "ib0").mkdir(parents=True)
    make_port(
        root, "mlx5_1", 1, state="1: DOWN", phys_state="3: Disabled",
        rate="10 Gb/sec (4X SDR)", link_layer="InfiniBand",
    )  # fmt: skip
    make_port(
        root, "mlx5_10", 1, state="4: ACTIVE", phys_state="5: LinkUp",
        rate="25 Gb/sec (1X EDR)", link_layer="Ethernet",
    )  # fmt: skip
    (root / "mlx5_10" / "device" / "net" / "ens1f0np0").mkdir(parents=True)
    make_port(root, "mlx5_2", 1, state="4: ACTIVE", link_layer="InfiniBand")  # no rate, no phys_state
    return root


def test_ports_in_natural_order_with_parsed_values(tmp_path):
    ports = ib_ports(fake_sysfs(tmp_path))
    assert [p.name for p in ports] == ["mlx5_0:1", "mlx5_1:1", "mlx5_2:1", "mlx5_10:1"]
    ib = ports[0]
    assert ib == IbPort(
        device="mlx5_0",
        port=1,
        state="ACTIVE",
        rate="200 Gb/sec (4X HDR)",
        rate_gbps=200.0,
        link_layer="InfiniBand",
        netdevs=("ib0",),
        phys_state="LinkUp",
    )
    assert ib.active and not ib.roce


def test_down_port_is_not_active(tmp_path):
    down = ib_ports(fake_sysfs(tmp_path))[1]
    assert down.state == "DOWN" and down.phys_state == "Disabled" and not down.active
    assert down.rate_gbps == 10.0


def test_roce_port_with_its_netdev(tmp_path):
    roce = ib_ports(fake_sysfs(tmp_path))[3]
    assert roce.device == "mlx5_10" and roce.roce and roce.active
    assert roce.netdevs == ("ens1f0np0",) and roce.rate_gbps == 25.0


def test_missing_rate_leaves_it_unknown(tmp_path):
    port = ib_ports(fake_sysfs(tmp_path))[2]
    assert port.rate == "" and port.rate_gbps == 0.0 and port.phys_state == "" and port.active
    assert port.netdevs == ()


def test_no_directory_means_no_ports(tmp_path):
    assert ib_ports(tmp_path / "absent") == []
    assert ib_ports(tmp_path) == []  # exists, but empty


def test_odd_files_do_not_raise(tmp_path):
    root = tmp_path / "infiniband"
    (root / "mlx5_0" / "ports" / "1" / "rate").mkdir(parents=True)  # a directory where a file belongs
    (root / "mlx5_0" / "ports" / "1" / "state").write_bytes(b"\xff\xfe garbage")
    (root / "mlx5_0" / "ports" / "lost+found").mkdir()  # not a port number
    (root / "stray-file").write_text("x")
    (port,) = ib_ports(root)
    assert port.name == "mlx5_0:1" and port.rate == "" and port.rate_gbps == 0.0 and not port.active
    assert port.link_layer == ""


@pytest.mark.parametrize(
    ("rate", "gbps"),
    [
        ("2.5 Gb/sec (1X SDR)", 2.5),
        ("56 Gb/sec (4X FDR)", 56.0),
        ("400 Gb/sec (4X NDR)", 400.0),
        ("fast", 0.0),
    ],
)
def test_rate_in_gbps(tmp_path, rate, gbps):
    make_port(tmp_path, "mlx5_0", 1, rate=rate)
    (port,) = ib_ports(tmp_path)
    assert port.rate == rate and port.rate_gbps == gbps


def test_json_round_trip_through_a_store(tmp_path):
    ports = ib_ports(fake_sysfs(tmp_path))
    wire = json.loads(json.dumps([p.to_json() for p in ports]))
    assert wire[0]["netdevs"] == ["ib0"]  # tuples travel as lists
    assert [IbPort.from_json(d) for d in wire] == ports


def test_from_json_tolerates_older_and_newer_payloads():
    old = {"device": "mlx5_0", "port": 1, "state": "ACTIVE", "rate": "", "rate_gbps": 0.0}
    port = IbPort.from_json({**old, "link_layer": "Ethernet", "netdevs": ["eth2"], "added_later": 1})
    assert port.netdevs == ("eth2",) and port.phys_state == "" and port.roce


def test_nccl_takes_active_ib_and_roce_ports_only(tmp_path):
    usable = {p.name: p.nccl_usable for p in ib_ports(fake_sysfs(tmp_path))}
    assert usable == {"mlx5_0:1": True, "mlx5_1:1": False, "mlx5_2:1": True, "mlx5_10:1": True}
    efa = IbPort("efa_0", 1, "ACTIVE", "100 Gb/sec", 100.0, "Unknown")  # reached through a plugin
    assert efa.active and not efa.nccl_usable


@pytest.mark.parametrize(
    ("env", "off"),
    [
        ({}, False),
        ({"NCCL_IB_DISABLE": "0"}, False),
        ({"NCCL_IB_DISABLE": "1"}, True),
        ({"NCCL_IB_DISABLE": " 2 "}, True),
        ({"NCCL_IB_DISABLE": "yes"}, False),  # NCCL reads an integer: not one, not set
        ({"NCCL_NET": "Socket"}, True),
        ({"NCCL_NET": "IB"}, False),
    ],
)
def test_ib_off_on_purpose(env, off):
    assert ib_off_on_purpose(env) is off
