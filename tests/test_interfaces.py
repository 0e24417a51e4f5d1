"""Judging the predicted interfaces of every node (synthetic inventories)."""

from nccldoctor.net.interfaces import Iface
from nccldoctor.net.inventory import NodeNet
from nccldoctor.net.judge import judge_interfaces


def node(rank, *ifaces, env=None, hostname_address="auto"):
    if hostname_address == "auto":
        hostname_address = ifaces[1].addresses[0].split("/")[0] if len(ifaces) > 1 else None
    return NodeNet(
        node_rank=rank,
        hostname=f"host{rank}",
        hostname_address=hostname_address,
        ifaces=list(ifaces),
        env=env or {},
    )


LO = Iface("lo", ("127.0.0.1/8",), mtu=65536)


def eth(name, address, mtu=1500, up=True):
    return Iface(name, (address,), up=up, mtu=mtu, speed_mbps=25000)


def codes(findings):
    return sorted((f.code, tuple(f.nodes)) for f in findings)


def test_healthy_nodes_on_one_subnet_have_no_findings():
    nodes = [node(0, LO, eth("eth0", "10.0.0.1/24")), node(1, LO, eth("eth0", "10.0.0.2/24"))]
    choices, findings = judge_interfaces(nodes, "gloo")
    assert findings == [] and choices[1].names == ["eth0"]


def test_gloo_ifname_missing_everywhere_names_every_node_and_what_exists():
    env = {"GLOO_SOCKET_IFNAME": "ib0"}
    nodes = [node(r, LO, eth("eth0", f"10.0.0.{r + 1}/24"), env=env) for r in range(3)]
    _, findings = judge_interfaces(nodes, "gloo")
    assert codes(findings) == [("iface_missing", (0,)), ("iface_missing", (1,)), ("iface_missing", (2,))]
    assert "it has lo, eth0" in findings[0].message
    assert findings[0].fix.startswith("export GLOO_SOCKET_IFNAME=eth0")


def test_unresolvable_hostname_on_one_node_is_gloo_loopback_there_only():
    nodes = [
        node(0, LO, eth("eth0", "10.0.0.1/24")),
        node(1, LO, eth("eth0", "10.0.0.2/24"), hostname_address=None),
    ]
    _, findings = judge_interfaces(nodes, "gloo")
    assert codes(findings) == [("iface_virtual", (1,))]
    assert "loopback" in findings[0].message and findings[0].fix == "export GLOO_SOCKET_IFNAME=eth0"


def test_nccl_default_picking_a_bridge_is_virtual():
    bridge = Iface("virbr0", ("192.168.122.1/24",), mtu=1500)
    nodes = [node(r, LO, bridge, eth("eth0", f"10.0.0.{r + 1}/24")) for r in range(2)]
    _, findings = judge_interfaces(nodes, "nccl")
    assert codes(findings) == [("iface_virtual", (0,)), ("iface_virtual", (1,))]
    assert findings[0].fix == "export NCCL_SOCKET_IFNAME=eth0"


def test_single_node_may_use_loopback():
    _, findings = judge_interfaces([node(0, LO, eth("eth0", "10.0.0.1/24"), hostname_address=None)], "gloo")
    assert findings == []


def test_down_interface_and_subnet_mismatch_and_mtu():
    down = [node(0, LO, eth("eth0", "10.0.0.1/24")), node(1, LO, eth("eth0", "10.0.0.2/24", up=False))]
    assert codes(judge_interfaces(down, "gloo")[1]) == [("iface_down", (1,))]
    apart = [
        node(0, LO, eth("eth0", "10.0.0.1/24"), eth("eth1", "10.9.0.1/24")),
        node(1, LO, eth("eth1", "10.9.0.2/24"), eth("eth0", "10.1.0.2/24")),
    ]
    (mismatch,) = judge_interfaces(
        apart,
        "nccl",
    )[1]
    assert mismatch.code == "iface_mismatch" and mismatch.nodes == [0, 1]
    assert mismatch.message == "nccl's interfaces share no subnet between node 0 (eth0) and node 1 (eth1)"
    assert mismatch.fix == "export NCCL_SOCKET_IFNAME=eth1"  # the one on a subnet both share
    jumbo = [
        node(0, LO, eth("eth0", "10.0.0.1/24", mtu=9000)),
        node(1, LO, eth("eth0", "10.0.0.2/24")),
        node(2, LO, eth("eth0", "10.0.0.3/24", mtu=9000)),
    ]
    (mtu,) = judge_interfaces(jumbo, "gloo")[1]
    assert (mtu.code, mtu.severity.value, mtu.nodes) == ("mtu_mismatch", "warn", [1])


def test_mtu_mismatch_names_the_odd_node_by_majority_in_words_and_points_at_the_fabrics_mtu():
    nodes = [
        node(0, LO, eth("eth0", "10.0.0.1/24")),
        node(1, LO, eth("ens5", "10.0.0.2/24", mtu=1400)),
        node(2, LO, eth("eth0", "10.0.0.3/24")),
    ]
    (mtu,) = judge_interfaces(nodes, "gloo")[1]
    assert mtu.nodes == [1] and mtu.evidence == {"mtu_by_node": {0: 1500, 1: 1400, 2: 1500}}
    assert mtu.message == (
        "MTU differs between nodes on the interfaces in use: node 1 (ens5) has 1400, "
        "while the other 2 nodes have 1500"
    )
    assert mtu.fix.endswith("(usually the one most nodes use, 1500): ip link set dev ens5 mtu 1500 on node 1")


def test_mtu_mismatch_between_two_nodes_says_no_majority_tells_and_suggests_the_largest():
    nodes = [node(0, LO, eth("eth0", "10.0.0.1/24")), node(1, LO, eth("eth0", "10.0.0.2/24", mtu=1400))]
    (mtu,) = judge_interfaces(nodes, "gloo")[1]
    assert mtu.nodes == [0, 1]
    assert mtu.message == (
        "MTU differs between nodes on the interfaces in use, and no majority tells which node is "
        "odd: node 0 (eth0) has 1500 and node 1 (eth0) has 1400"
    )
    assert "{" not in mtu.message and "mtu 1400" not in mtu.fix  # never lower the others to the smallest
    assert mtu.fix.startswith("set every node's interface to the MTU the switch fabric uses")
    assert mtu.fix.endswith("ip link set dev eth0 mtu 1500 on node 1")
