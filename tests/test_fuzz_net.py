"""Property tests (hypothesis) for the interface-selection rules and Slurm hostlists.

NCCL_SOCKET_IFNAME is checked against a line-by-line model of NCCL's own parser
(src/misc/utils.cc parseStringList and matchIfList, src/misc/socket.cc findInterfaces: items
split at `,`, the name ends at the first `:`, empty names skipped, nothing stripped, at most
MAX_IFS = 16 items; an empty list matches every interface). A prediction that differs from
NCCL's choice would blame or clear the wrong NIC.
"""

from __future__ import annotations

from helpers.fuzz import hostile_text
from hypothesis import example, given
from hypothesis import strategies as st

from nccldoctor.findings import CATALOG
from nccldoctor.gate.hostlist import compress, expand, sort_key
from nccldoctor.net.interfaces import Iface, gloo_choice, nccl_choice
from nccldoctor.net.inventory import NodeNet
from nccldoctor.net.judge import judge_interfaces

PREFIXES = ["eth", "ib", "lo", "docker", "virbr", "veth", "en", "bond", "e", "i"]
NAME = st.builds(lambda p, n: f"{p}{n}", st.sampled_from(PREFIXES), st.sampled_from(["", "0", "1", "10"]))
# What the kernel allows (dev_valid_name): 1-15 bytes, no whitespace, '/' or ':'.
LINUX_NAME = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="/: \t\n\r\v\f\x00"), min_size=1, max_size=15
)
ADDRESS = st.one_of(
    st.ip_addresses(v=4).map(lambda a: f"{a}/24"),
    st.ip_addresses(v=6).map(lambda a: f"{a}/64"),
    st.sampled_from(["127.0.0.1/8", "::1/128", "10.0.0.5/24"]),
)


@st.composite
def node(draw) -> list[Iface]:
    """A node's interfaces in kernel order: unique names, 0-2 addresses each."""
    names = draw(st.lists(st.one_of(NAME, LINUX_NAME), unique=True, max_size=7))
    return [Iface(n, tuple(draw(st.lists(ADDRESS, max_size=2))), up=draw(st.booleans())) for n in names]


ITEM = st.one_of(
    NAME,
    st.sampled_from(["", " ", " eth0", "eth0 ", ":5", "eth0:5000", "eth:1:2", "=eth0", "^lo"]),
    st.text(alphabet="ethlo0:=^ ,", max_size=5),
)
SPEC = st.builds(
    lambda neg, exact, items: ("^" if neg else "") + ("=" if exact else "") + ",".join(items),
    st.booleans(),
    st.booleans(),
    st.lists(ITEM, max_size=20),
)
FAMILY = st.sampled_from([None, "AF_INET", "AF_INET6", "AF_UNIX", ""])


def nccl_reference(value: str) -> tuple[bool, bool, list[str]]:
    """NCCL's reading of NCCL_SOCKET_IFNAME: (exclude, exact, names), char by char as in C."""
    exclude = value.startswith("^")
    value = value[1:] if exclude else value
    exact = value.startswith("=")
    value = value[1:] if exact else value
    names = [item.split(":", 1)[0] for item in value.split(",")]
    return exclude, exact, [n for n in names if n][:16]


def nccl_matches(value: str, name: str) -> bool:
    exclude, exact, names = nccl_reference(value)
    listed = not names or any(name == n if exact else name.startswith(n) for n in names)
    return listed != exclude


def usable(iface: Iface, family: str | None) -> bool:
    """An address NCCL would take: IPv4/IPv6 of the forced family, never IPv6 loopback."""
    wanted = {"AF_INET": 4, "AF_INET6": 6}.get(family or "")
    return any(
        not (n.version == 6 and n.ip.is_loopback) and wanted in (None, n.version) for n in iface.networks
    )


@given(node(), SPEC, FAMILY)
@example([Iface("eth0", ("10.0.0.5/24",))], ",,", None)  # no names: NCCL takes every interface
@example([Iface("eth0", ("10.0.0.5/24",))], "^:5", None)  # ... and "^" of no names takes none
@example([Iface("eth1", ("10.0.0.5/24",))], "eth0, eth1", None)  # " eth1" is no prefix of eth1
def test_nccl_socket_ifname_selects_what_nccl_selects(ifaces, value, family):
    env = {"NCCL_SOCKET_IFNAME": value} | ({"NCCL_SOCKET_FAMILY": family} if family is not None else {})
    choice = nccl_choice(ifaces, env)
    if len(value) <= 1:  # NCCL ignores a one-character value: the default rules apply
        assert choice.rule.startswith("default")
        return
    expected = [i.name for i in ifaces if nccl_matches(value, i.name) and usable(i, family)]
    assert choice.names == expected
    exclude, exact, names = nccl_reference(value)
    if exact and not exclude and names:
        assert set(choice.names) <= set(names)  # an exact list selects only the names it lists
    if exclude:
        assert not any(c.startswith(n) if not exact else c == n for c in choice.names for n in names)


@given(node(), st.one_of(hostile_text(), SPEC), hostile_text(), FAMILY)
def test_nccl_choice_never_raises_and_picks_from_the_node(ifaces, value, comm_id, family):
    env = {"NCCL_SOCKET_IFNAME": value, "NCCL_COMM_ID": comm_id, "NCCL_SOCKET_FAMILY": family or ""}
    choice = nccl_choice(ifaces, env)
    order = [i.name for i in ifaces]
    assert [order.index(n) for n in choice.names] == sorted(order.index(n) for n in choice.names)


def torch_gloo_names(value: str) -> list[str] | None:
    """torch's reading of GLOO_SOCKET_IFNAME (ProcessGroupGloo::Options::create_default): None
    when ignored (one character or less), else c10d::split's pieces (std::getline: no trailing
    empty piece), each of which must name an interface."""
    if len(value) <= 1:
        return None
    pieces = value.split(",")
    return pieces[:-1] if pieces[-1] == "" else pieces


GLOO_VALUE = st.one_of(
    hostile_text(max_size=12),
    st.lists(st.one_of(NAME, st.sampled_from(["", " eth0", "eth0 "])), max_size=4).map(",".join),
)


@given(node(), GLOO_VALUE, st.booleans())
@example([Iface("eth0", ("10.0.0.5/24",)), Iface("eth1", ("10.1.0.5/24",))], "eth0, eth1", False)
@example([Iface("lo", ("127.0.0.1/8",)), Iface("e", ("10.0.0.5/24",))], "e", False)  # ignored by torch
@example([Iface("eth0", ("10.0.0.5/24",))], "eth0,", False)  # a trailing comma adds no name
def test_gloo_socket_ifname_selects_what_torch_selects(ifaces, value, resolves):
    address = ifaces[0].networks[0].ip.compressed if resolves and ifaces and ifaces[0].addresses else None
    node_net = NodeNet(0, "node0", address, ifaces, {"GLOO_SOCKET_IFNAME": value})
    choice = gloo_choice(ifaces, node_net.env, address)
    wanted = torch_gloo_names(value)
    if wanted is None:
        assert not choice.rule.startswith("GLOO_SOCKET_IFNAME")
        return
    present = [i.name for i in ifaces]
    assert choice.names == [n for n in dict.fromkeys(wanted) if n in present]
    missing = [n for n in dict.fromkeys(wanted) if n not in present]
    assert choice.missing == missing
    codes = [f.code for f in judge_interfaces([node_net], "gloo")[1]]
    if missing or not choice.names:  # torch cannot make a device for every name: init fails
        assert codes == ["iface_missing"]


# -- Slurm hostlists ---------------------------------------------------------------------------

HOST = st.from_regex(r"[a-z]{1,4}(-?[a-z]{0,3}[0-9]{1,4}){0,2}(-[a-z]{1,3})?", fullmatch=True)


@given(st.lists(HOST, max_size=30))
@example(["a1", "a01", "a001"])  # one number, three paddings: three hosts
@example(["n9", "n10", "n010"])
def test_expand_of_compress_is_the_hosts_in_natural_order(hosts):
    hostlist = compress(hosts)
    assert expand(hostlist) == sorted(set(hosts), key=sort_key)
    assert compress(expand(hostlist)) == hostlist


@given(
    st.one_of(hostile_text(), st.from_regex(r"[a-z]{0,3}\[[0-9,\-\[\] ]{0,12}\][a-z]{0,2}", fullmatch=True))
)
@example("n[0-99999999999]")  # 10^11 names: refused, not built
@example("n[" + "9" * 5000 + "]")  # int() refuses 4300+ digits: ValueError all the same
def test_expand_of_any_text_raises_only_value_error(text):
    try:
        hosts = expand(text)
    except ValueError:
        return
    assert all(host and host == host.strip() for host in hosts)
    assert len(hosts) <= 65536 * max(1, text.count(","))


@st.composite
def cluster(draw) -> list[NodeNet]:
    """1-4 nodes, each with random interfaces, NCCL/Gloo variables and a hostname address."""
    nodes = []
    for rank in range(draw(st.integers(1, 4))):
        ifaces = draw(node())
        addresses = [n.ip.compressed for i in ifaces for n in i.networks]
        env = {
            var: draw(st.one_of(SPEC, hostile_text(max_size=10)))
            for var in draw(
                st.sets(st.sampled_from(["NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "NCCL_COMM_ID"]))
            )
        }
        address = draw(st.one_of(st.none(), st.sampled_from(addresses or ["127.0.1.1"])))
        nodes.append(NodeNet(rank, f"node{rank}", address, ifaces, env))
    return nodes


@given(cluster(), st.sampled_from(["nccl", "gloo"]))
@example([NodeNet(0, "node0", None, [], {"NCCL_SOCKET_IFNAME": "0\n"})], "nccl")  # a YAML `|` value's newline
def test_the_net_judge_never_raises_and_names_only_known_nodes(nodes, backend):
    choices, findings = judge_interfaces(nodes, backend)
    assert set(choices) == {n.node_rank for n in nodes}
    for finding in findings:
        assert set(finding.nodes or []) <= set(choices), finding.message
        assert finding.code in CATALOG and finding.message and "\n" not in finding.message
