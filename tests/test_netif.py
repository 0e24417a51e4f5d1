"""NCCL's and Gloo's interface choice (rules read from NCCL's socket.cc and torch's Gloo code)."""

import pytest

from nccldoctor.net.interfaces import Iface, gloo_choice, nccl_choice, parse_nccl_ifname

NODE = [
    Iface("lo", ("127.0.0.1/8", "::1/128")),
    Iface("eth0", ("10.0.0.5/24",)),
    Iface("eth1", ("10.1.0.5/24",)),
    Iface("docker0", ("172.17.0.1/16",)),
    Iface("virbr0", ("192.168.122.1/24",)),
    Iface("ib0", ("10.2.0.5/24",)),
]


def names(env, ifaces=NODE):
    return nccl_choice(ifaces, env).names


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("eth", ["eth0", "eth1"]),  # prefix match, kernel order kept
        ("eth1", ["eth1"]),
        ("=eth", []),  # exact: no interface is called "eth"
        ("=eth1,ib0", ["eth1", "ib0"]),
        ("^eth,lo", ["docker0", "virbr0", "ib0"]),  # exclusion by prefix
        ("^=eth0", ["lo", "eth1", "docker0", "virbr0", "ib0"]),  # exact exclusion
        ("ib0:5000,eth0", ["eth0", "ib0"]),  # a port suffix plays no part
        ("nosuch", []),
    ],
)
def test_nccl_socket_ifname_syntax(value, expected):
    assert names({"NCCL_SOCKET_IFNAME": value}) == expected


def test_one_character_value_is_ignored_like_nccl_does():
    choice = nccl_choice(NODE, {"NCCL_SOCKET_IFNAME": "e"})
    assert choice.names == ["ib0"] and choice.rule == "default: ib*" and choice.notes


def test_nccl_default_order_ib_then_not_docker_lo_then_docker_then_lo():
    assert names({}) == ["ib0"]
    no_ib = [i for i in NODE if i.name != "ib0"]
    assert names({}, no_ib) == ["eth0", "eth1", "virbr0"]  # virbr0 slips through, as in NCCL
    assert names({}, [i for i in no_ib if i.name.startswith(("docker", "lo"))]) == ["docker0"]
    assert names({}, [NODE[0]]) == ["lo"]


def test_nccl_comm_id_subnet_rule_comes_after_ib():
    no_ib = [i for i in NODE if i.name != "ib0"]
    choice = nccl_choice(no_ib, {"NCCL_COMM_ID": "10.1.0.9:29500"})
    assert choice.names == ["eth1"] and "NCCL_COMM_ID" in choice.rule


def test_nccl_socket_family_filters_addresses():
    v6 = [Iface("eth0", ("10.0.0.5/24",)), Iface("eth1", ("fd00::5/64",)), Iface("lo", ("::1/128",))]
    assert names({"NCCL_SOCKET_FAMILY": "AF_INET6"}, v6) == ["eth1"]  # IPv6 loopback never counts
    assert names({"NCCL_SOCKET_FAMILY": "AF_INET"}, v6) == ["eth0"]


def test_parse_keeps_flags_and_names():
    spec = parse_nccl_ifname("^=docker0,lo")
    assert (spec.exclude, spec.exact, spec.names) == (True, True, ("docker0", "lo"))


def test_gloo_uses_its_variable_then_the_hostname_else_loopback():
    assert gloo_choice(NODE, {"GLOO_SOCKET_IFNAME": "eth1"}, None).names == ["eth1"]
    assert gloo_choice(NODE, {"GLOO_SOCKET_IFNAME": "nosuch"}, "10.0.0.5").names == []
    assert gloo_choice(NODE, {}, "10.1.0.5").names == ["eth1"]
    unresolved = gloo_choice(NODE, {}, None)
    assert unresolved.names == ["lo"] and "loopback" in unresolved.rule
    elsewhere = gloo_choice(NODE, {}, "10.9.9.9")  # resolves, but not to an address of this node
    assert elsewhere.names == ["lo"] and "not an address of this node" in elsewhere.rule


def test_virtual_interfaces_are_recognised():
    assert [i.name for i in NODE if i.virtual] == ["lo", "docker0", "virbr0"]
