"""Interface check: which NIC will the backend use on every node, and can they reach each other?

Store only, before the process group forms: a broken network is reported, not hung in.
One rank per node (LOCAL_RANK 0) publishes its node's interfaces, hostname resolution and
socket variables; rank 0 predicts the backend's choice per node (nccldoctor.netif) and judges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nccldoctor.environment import relevant_env
from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.infiniband import IbPort, ib_ports
from nccldoctor.netif import Choice, Iface, gloo_choice, local_interfaces, nccl_choice, resolve_hostname
from nccldoctor.tcpcheck import source_address

SOCKET_VARIABLE = {"gloo": "GLOO_SOCKET_IFNAME", "nccl": "NCCL_SOCKET_IFNAME"}


@dataclass
class NodeNet:
    node_rank: int
    hostname: str
    hostname_address: str | None
    ifaces: list[Iface]
    env: dict[str, str] = field(default_factory=dict)
    master_route: dict[str, str | None] | None = None  # {"master", "source", "iface"}: the kernel's route
    ib_ports: list[IbPort] = field(default_factory=list)  # /sys/class/infiniband

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeNet:
        ifaces = [Iface(**{**i, "addresses": tuple(i["addresses"])}) for i in data["ifaces"]]
        ports = [IbPort.from_json(p) for p in data.get("ib_ports", [])]
        return cls(**{**data, "ifaces": ifaces, "ib_ports": ports})

    @property
    def ib_active(self) -> list[str]:
        """Active IB/RoCE ports by NCCL's name for them ("mlx5_0:1")."""
        return [p.name for p in self.ib_ports if p.active]


def collect_node_net(node_rank: int, hostname: str, master_addr: str | None = None) -> NodeNet:
    ifaces = local_interfaces()
    return NodeNet(
        node_rank=node_rank,
        hostname=hostname,
        hostname_address=resolve_hostname(hostname),
        ifaces=ifaces,
        env=relevant_env(),
        master_route=route_to(master_addr, ifaces) if master_addr else None,
        ib_ports=ib_ports(),
    )


def route_to(host: str, ifaces: list[Iface]) -> dict[str, str | None]:
    """Which local address and interface the kernel would use towards `host`."""
    address = resolve_hostname(host)
    source = source_address(address) if address else None
    return {"master": host, "source": source, "iface": iface_of(source, ifaces)}


def iface_of(address: str | None, ifaces: list[Iface]) -> str | None:
    if address is None:
        return None
    return next((i.name for i in ifaces if any(net.ip.compressed == address for net in i.networks)), None)


def predict(node: NodeNet, backend: str) -> Choice:
    if backend == "nccl":
        return nccl_choice(node.ifaces, node.env)
    return gloo_choice(node.ifaces, node.env, node.hostname_address)


def judge_interfaces(nodes: list[NodeNet], backend: str) -> tuple[dict[int, Choice], list[Finding]]:
    """Per node the predicted interfaces, and what is wrong with them."""
    choices = {n.node_rank: predict(n, backend) for n in nodes}
    findings = [f for n in nodes for f in _node_findings(n, choices[n.node_rank], backend, len(nodes))]
    if not any(f.severity is Severity.FAIL for f in findings):
        findings += _reachability(nodes, choices, backend) + _mtu(nodes, choices)
    return choices, findings


def _export(backend: str, iface: str) -> str:
    return f"export {SOCKET_VARIABLE[backend]}={iface}"


def _candidates(node: NodeNet) -> list[str]:
    return [i.name for i in node.ifaces if i.up and i.has_ip and not i.virtual]


def _node_findings(node: NodeNet, choice: Choice, backend: str, nnodes: int) -> list[Finding]:
    where = {"nodes": [node.node_rank]}
    best = (_candidates(node) or ["<interface>"])[0]
    evidence = {"rule": choice.rule, "chosen": choice.names, "interfaces": [i.name for i in node.ifaces]}
    if not choice.ifaces:
        return [
            make_finding(
                "iface_missing",
                f"node {node.node_rank} ({node.hostname}): {choice.rule} matches no "
                f"interface; it has {', '.join(i.name for i in node.ifaces)}",
                evidence=evidence,
                fix=f"{_export(backend, best)}  (an interface that exists on node {node.node_rank})",
                **where,
            )
        ]
    findings = []
    down = [i.name for i in choice.ifaces if not i.up]
    if down:
        findings.append(
            make_finding(
                "iface_down",
                f"node {node.node_rank}: {backend} would use {', '.join(down)}, which is down",
                evidence=evidence,
                fix=f"bring it up (ip link set {down[0]} up) or {_export(backend, best)}",
                **where,
            )
        )
    first = choice.ifaces[0]
    if nnodes > 1 and first.virtual:
        findings.append(
            make_finding(
                "iface_virtual",
                f"node {node.node_rank}: {backend} would carry traffic between nodes on "
                f"{first.name} ({choice.rule}), which does not leave this host",
                evidence=evidence,
                fix=_export(backend, best),
                **where,
            )
        )
    return findings


def _reachability(nodes: list[NodeNet], choices: dict[int, Choice], backend: str) -> list[Finding]:
    """Nodes whose chosen interface shares no subnet with node 0's chosen interface."""

    def networks(choice: Choice):
        return {net.network for i in choice.ifaces[:1] for net in i.networks if not net.ip.is_link_local}

    reference = networks(choices[nodes[0].node_rank])
    cut_off = [n for n in nodes[1:] if not networks(choices[n.node_rank]) & reference]
    if not cut_off:
        return []
    ranks = [n.node_rank for n in cut_off]
    names = {n.node_rank: choices[n.node_rank].names[:1] for n in nodes}
    shared = next(iter(shared_candidates(nodes)), None)
    return [
        make_finding(
            "iface_mismatch",
            f"{backend}'s interfaces share no subnet between node 0 ({names[0]}) and "
            f"node(s) {', '.join(map(str, ranks))} ({', '.join(str(names[r]) for r in ranks)})",
            nodes=[0, *ranks],
            evidence={"chosen": names},
            fix=_export(backend, shared)
            if shared
            else f"set {SOCKET_VARIABLE[backend]} per node to interfaces on one common subnet",
        )
    ]


def shared_candidates(nodes: list[NodeNet]) -> list[str]:
    """Interfaces (by name) that are up, real, and on one common subnet on every node."""
    found = []
    for name in _candidates(nodes[0]):
        subnets = []
        for node in nodes:
            iface = next((i for i in node.ifaces if i.name == name and i.up), None)
            subnets.append({net.network for net in iface.networks} if iface else set())
        if set.intersection(*subnets):
            found.append(name)
    return found


def _mtu(nodes: list[NodeNet], choices: dict[int, Choice]) -> list[Finding]:
    mtus = {n.node_rank: choices[n.node_rank].ifaces[0].mtu for n in nodes if choices[n.node_rank].ifaces}
    if len(set(mtus.values())) <= 1:
        return []
    common = max(set(mtus.values()), key=list(mtus.values()).count)
    odd = [node for node, mtu in mtus.items() if mtu != common]
    return [
        make_finding(
            "mtu_mismatch",
            f"MTU differs between nodes on the interfaces in use: {mtus}",
            nodes=odd,
            evidence={"mtu_by_node": mtus},
            fix=f"set the same MTU everywhere, e.g. ip link set <iface> mtu {common} on node(s) "
            f"{', '.join(map(str, odd))}",
        )
    ]


def network_section(nodes: list[NodeNet], choices: dict[int, Choice], backend: str) -> dict[str, Any]:
    """The report's `network` section: per node, what the backend will use and why."""
    return {
        "backend": backend,
        "nodes": [
            {
                "node_rank": n.node_rank,
                "hostname": n.hostname,
                "hostname_address": n.hostname_address,
                "chosen": choices[n.node_rank].names,
                "rule": choices[n.node_rank].rule,
                "master_route": n.master_route,
                "ib_ports": [p.to_json() for p in n.ib_ports],
                "interfaces": [
                    {
                        "name": i.name,
                        "addresses": list(i.addresses),
                        "up": i.up,
                        "mtu": i.mtu,
                        "speed_mbps": i.speed_mbps,
                    }
                    for i in n.ifaces
                ],
            }
            for n in nodes
        ],
    }
