"""A node's interfaces, and which of them the backend will use: NCCL's and Gloo's rules, as pure functions.

NCCL (src/misc/socket.cc, ncclFindInterfaces), for its bootstrap and socket transport:
- NCCL_SOCKET_IFNAME, when set to more than one character: a comma list of name prefixes;
  a leading `^` excludes them instead, and then a leading `=` makes them exact names
  (`^=docker0,lo`). Interfaces are taken in the kernel's order (getifaddrs), IPv4 and IPv6
  only (NCCL_SOCKET_FAMILY=AF_INET / AF_INET6 forces one), IPv6 loopback never.
- unset: `ib*` first; else an interface in the same subnet as NCCL_COMM_ID's address; else
  anything but `docker*` and `lo*`; else `docker*`; else `lo*`. Note that `virbr0` or `veth*`
  pass the third rule: a classic way to pick a bridge that does not reach other nodes.

Gloo (torch's ProcessGroupGloo::Options::create_default): GLOO_SOCKET_IFNAME, when set to more
than one character, a comma list of exact names, none stripped, every one of which must exist
(a device is made for each; one missing fails the process group); otherwise the address the
hostname resolves to if it is one of this node's own addresses, and loopback when it is not or
the hostname does not resolve ("Unable to resolve hostname to a (local) address. Using the
loopback address as fallback."). A hostname that
resolves to 127.0.1.1, as Debian's /etc/hosts does, is local too: Gloo then binds loopback.
Either way a multi-node job cannot connect.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

VIRTUAL_PREFIXES = ("lo", "docker", "virbr", "veth", "br-", "cni", "flannel", "cali", "vxlan", "tun", "tap")
SOCKET_VARIABLE = {"gloo": "GLOO_SOCKET_IFNAME", "nccl": "NCCL_SOCKET_IFNAME"}  # what steers each choice


@dataclass(frozen=True)
class Iface:
    name: str
    addresses: tuple[str, ...] = ()  # "10.0.0.1/24", "fe80::1/64"
    up: bool = True
    mtu: int = 0
    speed_mbps: int = 0  # 0: unknown (virtual NICs report none)

    @property
    def networks(self) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        return [ipaddress.ip_interface(a) for a in self.addresses]

    @property
    def has_ip(self) -> bool:
        return any(not (net.version == 6 and net.ip.is_loopback) for net in self.networks)

    @property
    def virtual(self) -> bool:
        return self.name.startswith(VIRTUAL_PREFIXES)


def real_nics(ifaces: list[Iface]) -> list[str]:
    """The interfaces traffic between nodes can use (up, addressed, leaving the host), by name."""
    return [i.name for i in ifaces if i.up and i.has_ip and not i.virtual]


@dataclass(frozen=True)
class IfnameSpec:
    """A parsed NCCL_SOCKET_IFNAME value."""

    names: tuple[str, ...]
    exclude: bool = False
    exact: bool = False

    def matches(self, name: str) -> bool:
        # matchIfList: a list with no names matches every interface ("," selects all, "^," none).
        hit = not self.names or any(name == n if self.exact else name.startswith(n) for n in self.names)
        return hit != self.exclude


MAX_IFS = 16  # socket.cc: NCCL reads at most this many items of the list


def parse_nccl_ifname(value: str) -> IfnameSpec:
    """As NCCL's parseStringList reads it: items split at `,`, each name ending at its first `:`
    (a port, which plays no part in choosing an interface), empty names skipped, and nothing
    stripped: `eth0, eth1` lists " eth1", which no interface is called."""
    exclude = value.startswith("^")
    value = value[1:] if exclude else value
    exact = value.startswith("=")
    value = value[1:] if exact else value
    names = [item.split(":", 1)[0] for item in value.split(",")]
    return IfnameSpec(names=tuple(n for n in names if n)[:MAX_IFS], exclude=exclude, exact=exact)


def _family_ok(net: ipaddress.IPv4Interface | ipaddress.IPv6Interface, family: str | None) -> bool:
    if net.version == 6 and net.ip.is_loopback:
        return False
    return family is None or (family == "AF_INET") == (net.version == 4)


def _select(ifaces: Iterable[Iface], spec: IfnameSpec, family: str | None) -> list[Iface]:
    return [i for i in ifaces if spec.matches(i.name) and any(_family_ok(n, family) for n in i.networks)]


@dataclass
class Choice:
    """The interfaces a backend will use on one node, and the rule that chose them."""

    ifaces: list[Iface]
    rule: str  # e.g. "NCCL_SOCKET_IFNAME=^docker", "default: ib*", "hostname -> 10.0.0.1"
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # names the rule requires that are not here

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.ifaces]


def nccl_choice(ifaces: list[Iface], env: dict[str, str]) -> Choice:
    """The interfaces NCCL's socket code will pick on a node with `ifaces` and `env`."""
    family = (
        env.get("NCCL_SOCKET_FAMILY") if env.get("NCCL_SOCKET_FAMILY") in ("AF_INET", "AF_INET6") else None
    )
    value = env.get("NCCL_SOCKET_IFNAME", "")
    if len(value) > 1:
        spec = parse_nccl_ifname(value)
        return Choice(_select(ifaces, spec, family), f"NCCL_SOCKET_IFNAME={shown(value)}")
    notes = ["NCCL_SOCKET_IFNAME of one character is ignored by NCCL"] if value else []
    for rule, spec in _nccl_default_rules(env.get("NCCL_COMM_ID")):
        chosen = _select(ifaces, spec, family) if spec else rule_matches_subnet(ifaces, env["NCCL_COMM_ID"])
        if chosen:
            return Choice(chosen, rule, notes)
    return Choice([], "default: no usable interface", notes)


def shown(value: str) -> str:
    """A variable's value as a message quotes it: as it is, or escaped when it holds a newline or
    another control character (a YAML `|` block leaves one at the end; NCCL keeps it)."""
    return value if value.isprintable() else repr(value)


def _nccl_default_rules(comm_id: str | None) -> Iterator[tuple[str, IfnameSpec | None]]:
    """NCCL's fallbacks in its order; None: the NCCL_COMM_ID subnet rule (not a name pattern)."""
    yield "default: ib*", IfnameSpec(("ib",))
    if comm_id and len(comm_id) > 1:
        yield f"default: same subnet as NCCL_COMM_ID={shown(comm_id)}", None
    yield "default: not docker*, lo*", IfnameSpec(("docker", "lo"), exclude=True)
    yield "default: docker*", IfnameSpec(("docker",))
    yield "default: lo*", IfnameSpec(("lo",))


def rule_matches_subnet(ifaces: list[Iface], host_port: str) -> list[Iface]:
    """The first interface whose subnet holds the address of NCCL_COMM_ID (ip:port)."""
    host = host_port.rsplit(":", 1)[0].strip("[]")
    try:
        target = ipaddress.ip_address(host)
    except ValueError:
        return []  # a hostname: NCCL resolves it; we do not guess here
    for iface in ifaces:
        if any(target in net.network for net in iface.networks):
            return [iface]
    return []


def gloo_choice(ifaces: list[Iface], env: dict[str, str], hostname_address: str | None) -> Choice:
    """The interfaces Gloo will use: GLOO_SOCKET_IFNAME, else the hostname's address (or loopback)."""
    value = env.get("GLOO_SOCKET_IFNAME", "")
    if len(value) > 1:
        # c10d::split (std::getline): "a,,b" holds an empty name, a trailing comma does not.
        wanted = list(dict.fromkeys(value.removesuffix(",").split(",")))
        by_name = {i.name: i for i in ifaces}
        return Choice(
            [by_name[n] for n in wanted if n in by_name],
            f"GLOO_SOCKET_IFNAME={shown(value)}",
            missing=[n for n in wanted if n not in by_name],
        )
    notes = ["GLOO_SOCKET_IFNAME of one character is ignored by torch"] if value else []
    choice = _gloo_by_hostname(ifaces, hostname_address)
    choice.notes += notes
    return choice


def _gloo_by_hostname(ifaces: list[Iface], hostname_address: str | None) -> Choice:
    loopback = [i for i in ifaces if i.name.startswith("lo")]
    if hostname_address is None:
        return Choice(loopback, "hostname does not resolve: Gloo falls back to loopback")
    target = ipaddress.ip_address(hostname_address)
    if target.is_loopback:  # all of 127/8 is local: Gloo binds it, and peers cannot reach it
        return Choice(loopback, f"hostname -> {hostname_address} (loopback)")
    owner = [i for i in ifaces if any(net.ip == target for net in i.networks)]
    if not owner:
        return Choice(
            loopback,
            f"hostname -> {hostname_address}, not an address of this node: Gloo falls back to loopback",
        )
    return Choice(owner, f"hostname -> {hostname_address}")


def local_interfaces() -> list[Iface]:
    """This node's interfaces (psutil), in the kernel's order."""
    import socket

    import psutil

    stats = psutil.net_if_stats()
    found = []
    for name, addrs in psutil.net_if_addrs().items():
        networks = []
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6) or not addr.netmask:
                continue
            ip = addr.address.split("%", 1)[0]
            prefix = bin(int(ipaddress.ip_address(addr.netmask))).count("1")  # netmask -> /prefix
            networks.append(f"{ip}/{prefix}")
        stat = stats.get(name)
        found.append(
            Iface(
                name=name,
                addresses=tuple(networks),
                up=bool(stat and stat.isup),
                mtu=stat.mtu if stat else 0,
                speed_mbps=stat.speed if stat else 0,
            )
        )
    return found


def resolve_hostname(hostname: str) -> str | None:
    import socket

    try:
        return socket.gethostbyname(hostname)
    except OSError:
        return None
